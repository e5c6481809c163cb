//go:build !shim_shared

// shim.cpp implements shim.h over ATen's dispatcher. It is the only C++
// translation unit of the bindings: one boxed entry point reaches every
// ATen operator by name, so adding an op needs Go code only.
#include "shim.h"
#include "guard.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace {

using finetune::dup_message;
using finetune::guard;

at::Tensor &T(ft_tensor t) {
  if (t == nullptr) {
    throw std::invalid_argument("null tensor handle");
  }
  return *static_cast<at::Tensor *>(t);
}

ft_tensor wrap(at::Tensor t) { return new at::Tensor(std::move(t)); }

at::Generator &G(ft_generator g) {
  if (g == nullptr) {
    throw std::invalid_argument("null generator handle");
  }
  return *static_cast<at::Generator *>(g);
}

// Intra-op parallelism is an OpenMP setting of each OS thread, and Go
// moves goroutines between threads, so the requested count is applied
// lazily on whichever thread runs an operator.
std::atomic<int> wanted_threads{0};
thread_local int applied_threads = 0;

void sync_threads() {
  int want = wanted_threads.load(std::memory_order_relaxed);
  if (want > 0 && applied_threads != want) {
    at::set_num_threads(want);
    applied_threads = want;
  }
}

struct Cursor {
  const int64_t *ints;
  const double *doubles;
  const ft_tensor *tensors;
  const char *bytes;
  const ft_generator *generators;
  int64_t next_int() { return *ints++; }
  double next_double() { return *doubles++; }
  ft_tensor next_tensor() { return *tensors++; }
};

c10::IValue decode(uint8_t tag, Cursor &c) {
  switch (tag) {
  case FT_ARG_NONE:
    return c10::IValue();
  case FT_ARG_TENSOR:
    return c10::IValue(T(c.next_tensor()));
  case FT_ARG_INT:
    return c10::IValue(c.next_int());
  case FT_ARG_DOUBLE:
    return c10::IValue(c.next_double());
  case FT_ARG_BOOL:
    return c10::IValue(c.next_int() != 0);
  case FT_ARG_INT_LIST: {
    int64_t n = c.next_int();
    std::vector<int64_t> v(c.ints, c.ints + n);
    c.ints += n;
    return c10::IValue(v);
  }
  case FT_ARG_DOUBLE_LIST: {
    int64_t n = c.next_int();
    std::vector<double> v(c.doubles, c.doubles + n);
    c.doubles += n;
    return c10::IValue(v);
  }
  case FT_ARG_TENSOR_LIST: {
    int64_t n = c.next_int();
    c10::List<at::Tensor> l;
    l.reserve(n);
    for (int64_t i = 0; i < n; i++) {
      l.push_back(T(c.next_tensor()));
    }
    return c10::IValue(l);
  }
  case FT_ARG_OPT_TENSOR_LIST: {
    int64_t n = c.next_int();
    c10::List<c10::optional<at::Tensor>> l;
    l.reserve(n);
    for (int64_t i = 0; i < n; i++) {
      ft_tensor t = c.next_tensor();
      if (t == nullptr) {
        l.push_back(c10::nullopt);
      } else {
        l.push_back(T(t));
      }
    }
    return c10::IValue(l);
  }
  case FT_ARG_DEVICE: {
    int64_t type = c.next_int();
    int64_t index = c.next_int();
    return c10::IValue(c10::Device(static_cast<c10::DeviceType>(type),
                                   static_cast<c10::DeviceIndex>(index)));
  }
  case FT_ARG_STRING: {
    int64_t n = c.next_int();
    std::string s(c.bytes, c.bytes + n);
    c.bytes += n;
    return c10::IValue(s);
  }
  case FT_ARG_GENERATOR:
    return c10::IValue(G(c.generators[c.next_int()]));
  }
  throw std::invalid_argument("unknown argument tag " + std::to_string(tag));
}

void put_tensor(at::Tensor t, int32_t cap, ft_tensor *out, int32_t *n,
                std::vector<ft_tensor> &extra) {
  ft_tensor h = wrap(std::move(t));
  if (*n < cap) {
    out[*n] = h;
  } else {
    extra.push_back(h);
  }
  (*n)++;
}

// libtorch 2.4 replaced the per-device autocast functions (set_enabled for
// CUDA, set_cpu_enabled, ...) by functions taking the device type.
#if TORCH_VERSION_MAJOR > 2 ||                                                 \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocast_is_enabled(c10::DeviceType d) {
  return at::autocast::is_autocast_enabled(d);
}
void autocast_set_enabled(c10::DeviceType d, bool on) {
  at::autocast::set_autocast_enabled(d, on);
}
at::ScalarType autocast_dtype(c10::DeviceType d) {
  return at::autocast::get_autocast_dtype(d);
}
void autocast_set_dtype(c10::DeviceType d, at::ScalarType t) {
  at::autocast::set_autocast_dtype(d, t);
}
#else
bool autocast_is_enabled(c10::DeviceType d) {
  return d == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                    : at::autocast::is_cpu_enabled();
}
void autocast_set_enabled(c10::DeviceType d, bool on) {
  if (d == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
at::ScalarType autocast_dtype(c10::DeviceType d) {
  return d == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                    : at::autocast::get_autocast_cpu_dtype();
}
void autocast_set_dtype(c10::DeviceType d, at::ScalarType t) {
  if (d == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(t);
  } else {
    at::autocast::set_autocast_cpu_dtype(t);
  }
}
#endif

// autocast_device checks that autocast supports the device type code.
c10::DeviceType autocast_device(int32_t code) {
  auto d = static_cast<c10::DeviceType>(code);
  if (d != c10::DeviceType::CPU && d != c10::DeviceType::CUDA) {
    throw std::invalid_argument(
        "autocast supports cpu and cuda, not device type " +
        std::to_string(code));
  }
  return d;
}

} // namespace

extern "C" {

char *ft_op_find(const char *name, const char *overload, ft_op *out) {
  return guard([&] {
    auto h = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!h.has_value()) {
      std::string full = name;
      if (overload[0] != '\0') {
        full += std::string(".") + overload;
      }
      throw std::invalid_argument("operator " + full +
                                  " is not in this libtorch");
    }
    *out = new c10::OperatorHandle(*h);
  });
}

char *ft_op_schema(ft_op op, char **out) {
  return guard([&] {
    std::ostringstream s;
    s << static_cast<c10::OperatorHandle *>(op)->schema();
    *out = dup_message(s.str());
  });
}

char *ft_op_call(ft_op op, int32_t ntags, const uint8_t *tags,
                 const int64_t *ints, const double *doubles,
                 const ft_tensor *tensors, const char *bytes,
                 const ft_generator *generators, int32_t discard,
                 int32_t out_cap, uint8_t *out_tags, int64_t *out_ints,
                 double *out_doubles, int32_t *nout, int32_t tensor_cap,
                 ft_tensor *out_tensors, int32_t *ntensors,
                 ft_tensor **overflow) {
  return guard([&] {
    sync_threads();
    auto &handle = *static_cast<c10::OperatorHandle *>(op);
    const auto &schema = handle.schema();
    const auto &formals = schema.arguments();
    if (static_cast<size_t>(ntags) > formals.size()) {
      throw std::invalid_argument(schema.name() + ": " +
                                  std::to_string(ntags) +
                                  " arguments given, schema takes " +
                                  std::to_string(formals.size()));
    }
    Cursor c{ints, doubles, tensors, bytes, generators};
    torch::jit::Stack stack;
    stack.reserve(formals.size());
    for (int32_t i = 0; i < ntags; i++) {
      c10::IValue v = decode(tags[i], c);
      const auto &formal = formals[i];
      if (!v.type()->isSubtypeOf(*formal.type())) {
        throw std::invalid_argument(
            schema.name() + ": argument '" + formal.name() + "' expects " +
            formal.type()->str() + ", got " + v.type()->str());
      }
      stack.push_back(std::move(v));
    }
    for (size_t i = ntags; i < formals.size(); i++) {
      if (!formals[i].default_value().has_value()) {
        throw std::invalid_argument(schema.name() + ": argument '" +
                                    formals[i].name() + "' is required");
      }
      stack.push_back(*formals[i].default_value());
    }
    handle.callBoxed(&stack);
    *nout = 0;
    *ntensors = 0;
    *overflow = nullptr;
    if (discard) {
      return;
    }
    std::vector<ft_tensor> extra;
    for (auto &v : stack) {
      if (*nout >= out_cap) {
        throw std::length_error(schema.name() + ": too many results");
      }
      int32_t k = (*nout)++;
      out_ints[k] = 0;
      out_doubles[k] = 0;
      if (v.isTensor()) {
        at::Tensor t = v.toTensor();
        if (!t.defined()) {
          out_tags[k] = FT_OUT_NONE;
          continue;
        }
        out_tags[k] = FT_OUT_TENSOR;
        put_tensor(std::move(t), tensor_cap, out_tensors, ntensors, extra);
      } else if (v.isTensorList()) {
        out_tags[k] = FT_OUT_TENSOR_LIST;
        auto l = v.toTensorList();
        out_ints[k] = static_cast<int64_t>(l.size());
        for (size_t j = 0; j < l.size(); j++) {
          put_tensor(l.get(j), tensor_cap, out_tensors, ntensors, extra);
        }
      } else if (v.isBool()) {
        out_tags[k] = FT_OUT_BOOL;
        out_ints[k] = v.toBool() ? 1 : 0;
      } else if (v.isInt()) {
        out_tags[k] = FT_OUT_INT;
        out_ints[k] = v.toInt();
      } else if (v.isDouble()) {
        out_tags[k] = FT_OUT_DOUBLE;
        out_doubles[k] = v.toDouble();
      } else if (v.isNone()) {
        out_tags[k] = FT_OUT_NONE;
      } else {
        throw std::invalid_argument(schema.name() +
                                    ": unsupported result type " +
                                    v.type()->str());
      }
    }
    if (!extra.empty()) {
      *overflow = static_cast<ft_tensor *>(
          std::malloc(extra.size() * sizeof(ft_tensor)));
      std::memcpy(*overflow, extra.data(), extra.size() * sizeof(ft_tensor));
    }
  });
}

void ft_tensor_free(ft_tensor t) { delete static_cast<at::Tensor *>(t); }

char *ft_tensor_from_data(const void *data, int64_t nbytes, int8_t dtype,
                          const int64_t *shape, int32_t ndim, ft_tensor *out) {
  return guard([&] {
    auto opts = at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype));
    at::Tensor t = at::empty(at::IntArrayRef(shape, ndim), opts);
    int64_t want = t.numel() * static_cast<int64_t>(t.element_size());
    if (want != nbytes) {
      throw std::invalid_argument("data has " + std::to_string(nbytes) +
                                  " bytes, shape needs " +
                                  std::to_string(want));
    }
    if (nbytes > 0) {
      std::memcpy(t.data_ptr(), data, nbytes);
    }
    *out = wrap(std::move(t));
  });
}

char *ft_tensor_copy_to(ft_tensor t, void *data, int64_t nbytes,
                        int8_t dtype) {
  return guard([&] {
    at::Tensor src = T(t).detach().to(at::kCPU,
                                      static_cast<at::ScalarType>(dtype))
                         .contiguous();
    int64_t have = src.numel() * static_cast<int64_t>(src.element_size());
    if (have != nbytes) {
      throw std::invalid_argument("tensor has " + std::to_string(have) +
                                  " bytes, destination " +
                                  std::to_string(nbytes));
    }
    if (nbytes > 0) {
      std::memcpy(data, src.data_ptr(), nbytes);
    }
  });
}

char *ft_tensor_info(ft_tensor t, int8_t *dtype, int32_t *ndim,
                     int64_t *shape, int32_t cap, int32_t *device_type,
                     int32_t *device_index, int32_t *requires_grad,
                     int32_t *defined) {
  return guard([&] {
    const at::Tensor &x = T(t);
    *defined = x.defined() ? 1 : 0;
    if (!x.defined()) {
      return;
    }
    *dtype = static_cast<int8_t>(x.scalar_type());
    *ndim = static_cast<int32_t>(x.dim());
    for (int32_t i = 0; i < *ndim && i < cap; i++) {
      shape[i] = x.size(i);
    }
    *device_type = static_cast<int32_t>(x.device().type());
    *device_index = x.device().index();
    *requires_grad = x.requires_grad() ? 1 : 0;
  });
}

char *ft_tensor_shallow_copy(ft_tensor t, ft_tensor *out) {
  return guard([&] { *out = wrap(T(t)); });
}

char *ft_tensor_set_requires_grad(ft_tensor t, int32_t on) {
  return guard([&] { T(t).set_requires_grad(on != 0); });
}

char *ft_tensor_grad(ft_tensor t, ft_tensor *out) {
  return guard([&] {
    at::Tensor g = T(t).grad();
    *out = g.defined() ? wrap(std::move(g)) : nullptr;
  });
}

char *ft_tensor_set_grad(ft_tensor t, ft_tensor grad) {
  return guard([&] {
    if (grad == nullptr) {
      T(t).mutable_grad() = at::Tensor();
    } else {
      T(t).mutable_grad() = T(grad);
    }
  });
}

char *ft_tensor_backward(ft_tensor t, ft_tensor grad, int32_t retain_graph) {
  return guard([&] {
    sync_threads();
    at::Tensor g = grad == nullptr ? at::Tensor() : T(grad);
    T(t).backward(g, retain_graph != 0, false);
  });
}

char *ft_tensor_is_contiguous(ft_tensor t, int32_t memory_format,
                              int32_t *out) {
  return guard([&] {
    *out = T(t).is_contiguous(static_cast<at::MemoryFormat>(memory_format));
  });
}

char *ft_tensor_data_ptr(ft_tensor t, void **out) {
  return guard([&] { *out = T(t).data_ptr(); });
}

char *ft_tensor_is_leaf(ft_tensor t, int32_t *out) {
  return guard([&] { *out = T(t).is_leaf() ? 1 : 0; });
}

int32_t ft_grad_enabled(void) { return at::GradMode::is_enabled() ? 1 : 0; }

void ft_set_grad_enabled(int32_t on) { at::GradMode::set_enabled(on != 0); }

void ft_manual_seed(uint64_t seed) { at::manual_seed(seed); }

char *ft_generator_new(uint64_t seed, ft_generator *out) {
  return guard([&] {
    *out = new at::Generator(at::make_generator<at::CPUGeneratorImpl>(seed));
  });
}

void ft_generator_free(ft_generator g) {
  delete static_cast<at::Generator *>(g);
}

char *ft_generator_set_seed(ft_generator g, uint64_t seed) {
  return guard([&] {
    std::lock_guard<std::mutex> lock(G(g).mutex());
    G(g).set_current_seed(seed);
  });
}

char *ft_generator_get_state(ft_generator g, ft_tensor *out) {
  return guard([&] {
    std::lock_guard<std::mutex> lock(G(g).mutex());
    *out = wrap(G(g).get_state());
  });
}

char *ft_generator_set_state(ft_generator g, ft_tensor state) {
  return guard([&] {
    std::lock_guard<std::mutex> lock(G(g).mutex());
    G(g).set_state(T(state));
  });
}

void ft_set_num_threads(int32_t n) {
  wanted_threads.store(n, std::memory_order_relaxed);
  sync_threads();
}

int32_t ft_get_num_threads(void) {
  sync_threads();
  return at::get_num_threads();
}

int32_t ft_cuda_is_available(void) {
  return at::detail::getCUDAHooks().hasCUDA() ? 1 : 0;
}

int32_t ft_cuda_device_count(void) {
  return at::detail::getCUDAHooks().getNumGPUs();
}

char *ft_version(char **out) {
  return guard([&] {
    std::string v = TORCH_VERSION;
    auto &hooks = at::detail::getCUDAHooks();
    if (hooks.hasCUDA()) {
      v += " cuda";
      if (hooks.hasCuDNN()) {
        v += " cudnn " + std::to_string(hooks.versionCuDNN());
      }
    } else {
      v += " cpu";
    }
    *out = dup_message(v);
  });
}


char *ft_autocast_enter(int32_t device_type, int8_t dtype,
                        int32_t *prev_enabled, int8_t *prev_dtype,
                        int32_t *prev_cache) {
  return guard([&] {
    c10::DeviceType d = autocast_device(device_type);
    *prev_enabled = autocast_is_enabled(d) ? 1 : 0;
    *prev_dtype = static_cast<int8_t>(autocast_dtype(d));
    *prev_cache = at::autocast::is_autocast_cache_enabled() ? 1 : 0;
    autocast_set_dtype(d, static_cast<at::ScalarType>(dtype));
    autocast_set_enabled(d, true);
    at::autocast::increment_nesting();
    at::autocast::set_autocast_cache_enabled(true);
  });
}

char *ft_autocast_exit(int32_t device_type, int32_t prev_enabled,
                       int8_t prev_dtype, int32_t prev_cache) {
  return guard([&] {
    c10::DeviceType d = autocast_device(device_type);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    autocast_set_enabled(d, prev_enabled != 0);
    autocast_set_dtype(d, static_cast<at::ScalarType>(prev_dtype));
    at::autocast::set_autocast_cache_enabled(prev_cache != 0);
  });
}

char *ft_autocast_enabled(int32_t device_type, int32_t *out) {
  return guard([&] {
    *out = autocast_is_enabled(autocast_device(device_type)) ? 1 : 0;
  });
}

void ft_set_cudnn_benchmark(int32_t on) {
  at::globalContext().setBenchmarkCuDNN(on != 0);
}

int32_t ft_cudnn_benchmark(void) {
  return at::globalContext().benchmarkCuDNN() ? 1 : 0;
}

char *ft_cuda_synchronize(int64_t device_index) {
  return guard([&] { torch::cuda::synchronize(device_index); });
}

char *ft_build_info(char **version, int32_t *cuda_built,
                    int64_t *cuda_version, int64_t *cudnn_version,
                    int32_t *cuda_available, int32_t *device_count) {
  return guard([&] {
    auto &hooks = at::detail::getCUDAHooks();
    *cuda_built = 0;
    *cuda_version = 0;
    *cudnn_version = 0;
    // Without libtorch_cuda the hooks are the CPU stubs, which throw.
    try {
      *cuda_version = hooks.versionCUDART();
      *cuda_built = 1;
    } catch (const c10::Error &) {
    }
    if (*cuda_built && hooks.compiledWithCuDNN()) {
      *cudnn_version = hooks.versionCuDNN();
    }
    *cuda_available = hooks.hasCUDA() ? 1 : 0;
    *device_count = hooks.getNumGPUs();
    *version = dup_message(TORCH_VERSION);
  });
}

} // extern "C"
