// guard.h is shared by the C++ files behind Go packages (torch/shim.cpp,
// torch/distributed/c10d.cpp): a C++ exception must never unwind into Go,
// so every C entry point runs its body through guard, which returns NULL
// on success or a malloc'd message, libtorch's own text without its
// backtrace, that Go frees.
#ifndef FINETUNE_TORCH_GUARD_H
#define FINETUNE_TORCH_GUARD_H

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace finetune {

inline char *dup_message(const std::string &s) {
  char *m = static_cast<char *>(std::malloc(s.size() + 1));
  if (m != nullptr) {
    std::memcpy(m, s.data(), s.size());
    m[s.size()] = '\0';
  }
  return m;
}

template <typename F> char *guard(F f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error &e) {
    return dup_message(e.what_without_backtrace());
  } catch (const std::exception &e) {
    return dup_message(e.what());
  } catch (...) {
    return dup_message("unknown C++ exception");
  }
}

} // namespace finetune

#endif
