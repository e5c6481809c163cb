//go:build !shim_shared

// c10d.cpp implements c10d.h over libtorch's c10d: a TCPStore for the
// rendezvous and a ProcessGroupGloo (or ProcessGroupNCCL, when compiled
// with USE_C10D_NCCL) for the collectives. No C++ exception crosses into
// Go: guard turns each into a message.
#include "c10d.h"
#include "../guard.h"

// c10d's headers declare ProcessGroupGloo only for libtorch built with
// Gloo, as every official and Debian build is.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/version.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// Since libtorch 2.0 the Gloo and NCCL process groups are backends of a
// ProcessGroup; their collectives are the same.
#if TORCH_VERSION_MAJOR >= 2
using Backend = c10d::Backend;
#else
using Backend = c10d::ProcessGroup;
#endif

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Backend> backend;
  int size;
  bool native_avg; // the backend implements ReduceOp::AVG
};

using finetune::dup_message;
using finetune::guard;

Group &G(ftd_group g) {
  if (g == nullptr) {
    throw std::invalid_argument("null process group");
  }
  return *static_cast<Group *>(g);
}

at::Tensor &T(void *t) {
  if (t == nullptr) {
    throw std::invalid_argument("null tensor handle");
  }
  return *static_cast<at::Tensor *>(t);
}

std::chrono::milliseconds ms(int64_t v) { return std::chrono::milliseconds(v); }

// wait waits for w for at most timeout: c10d throws the collective's
// error (a peer gone, Gloo's own timeout) or "Operation timed out!".
void wait(const c10::intrusive_ptr<c10d::Work> &w, int64_t timeout) {
  w->wait(ms(timeout));
}

// Dense is a contiguous tensor to hand a collective, standing for t: t
// itself, or a contiguous copy that back() copies into t.
struct Dense {
  at::Tensor &t;
  at::Tensor c;
  explicit Dense(at::Tensor &t) : t(t), c(t.contiguous()) {}
  void back() {
    if (!c.is_same(t)) {
      t.copy_(c);
    }
  }
};

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep)) {
    if (!part.empty()) {
      out.push_back(part);
    }
  }
  return out;
}

c10::intrusive_ptr<Backend> new_gloo(const c10::intrusive_ptr<c10d::Store> &store,
                                     int rank, int size, int64_t timeout,
                                     const std::string &ifnames, bool loopback) {
  auto opts = c10d::ProcessGroupGloo::Options::create(ms(timeout));
  for (const auto &name : split(ifnames, ',')) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
  }
  if (opts->devices.empty()) {
    opts->devices.push_back(
        loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                 : c10d::ProcessGroupGloo::createDefaultDevice());
  }
  // As torch.distributed: two threads per device.
  opts->threads = static_cast<int>(opts->devices.size()) * 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
}

c10::intrusive_ptr<Backend> new_nccl(const c10::intrusive_ptr<c10d::Store> &store,
                                     int rank, int size, int64_t timeout) {
#ifdef USE_C10D_NCCL
  // Blocking wait makes Work::wait honour its timeout (and throw) instead
  // of leaving a lost peer to the watchdog, which aborts the process.
  setenv("NCCL_BLOCKING_WAIT", "1", 0);       // libtorch 1.x
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0); // 2.x
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = ms(timeout);
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
#else
  (void)store, (void)rank, (void)size, (void)timeout;
  throw std::runtime_error(
      "the nccl backend is not compiled in (build with -DUSE_C10D_NCCL in "
      "CGO_CXXFLAGS against a CUDA libtorch); use gloo");
#endif
}

} // namespace

extern "C" {

int32_t ftd_nccl_built(void) {
#ifdef USE_C10D_NCCL
  return 1;
#else
  return 0;
#endif
}

namespace {

// arrive counts this rank in and waits until all size ranks have come,
// or fails after timeout_ms saying how many did: without it a missing
// rank shows only as c10d's "Socket Timeout".
void arrive(c10d::Store &store, int size, int64_t timeout_ms) {
  const std::string key = "finetune/arrived";
  auto deadline = std::chrono::steady_clock::now() + ms(timeout_ms);
  for (int64_t n = store.add(key, 1);; n = store.add(key, 0)) {
    if (n >= size) {
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::ostringstream m;
      m << "only " << n << " of " << size << " ranks arrived within the timeout";
      throw std::runtime_error(m.str());
    }
    std::this_thread::sleep_for(ms(50));
  }
}

} // namespace

char *ftd_group_new(const char *backend, const char *addr, int32_t port,
                    int32_t rank, int32_t size, int64_t timeout_ms,
                    const char *gloo_ifnames, int32_t loopback,
                    ftd_group *out) {
  return guard([&] {
    std::string name(backend);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = static_cast<std::size_t>(size);
    so.waitWorkers = false; // arrive counts the ranks itself, to say how many came
    so.timeout = ms(timeout_ms);
    c10::intrusive_ptr<c10d::TCPStore> store;
    try {
      store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), so);
    } catch (const std::exception &e) {
      if (rank == 0) {
        throw;
      }
      throw std::runtime_error("rank 0 did not open the rendezvous within the timeout: " + std::string(e.what()));
    }
    arrive(*store, size, timeout_ms);
    auto g = std::make_unique<Group>();
    g->store = store;
    g->size = size;
    if (name == "gloo") {
      g->backend = new_gloo(store, rank, size, timeout_ms, gloo_ifnames, loopback != 0);
      g->native_avg = false;
    } else if (name == "nccl") {
      g->backend = new_nccl(store, rank, size, timeout_ms);
      g->native_avg = true;
    } else {
      throw std::invalid_argument("unknown backend \"" + name + "\"");
    }
    *out = g.release();
  });
}

void ftd_group_free(ftd_group g) { delete static_cast<Group *>(g); }

char *ftd_allreduce(ftd_group g, void *const *tensors, int32_t n, int32_t op,
                    int64_t timeout_ms) {
  return guard([&] {
    Group &grp = G(g);
    at::NoGradGuard no_grad;
    auto rop = static_cast<c10d::ReduceOp::RedOpType>(op);
    bool divide = rop == c10d::ReduceOp::AVG && !grp.native_avg;
    c10d::AllreduceOptions opts;
    opts.reduceOp = divide ? c10d::ReduceOp(c10d::ReduceOp::SUM) : c10d::ReduceOp(rop);
    opts.timeout = ms(timeout_ms);
    std::vector<Dense> dense;
    dense.reserve(n);
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (int32_t i = 0; i < n; i++) {
      dense.emplace_back(T(tensors[i]));
      std::vector<at::Tensor> one{dense.back().c};
      works.push_back(grp.backend->allreduce(one, opts));
    }
    for (auto &w : works) {
      wait(w, timeout_ms);
    }
    for (auto &d : dense) {
      if (divide) {
        d.c.div_(grp.size);
      }
      d.back();
    }
  });
}

char *ftd_broadcast(ftd_group g, void *const *tensors, int32_t n, int32_t root,
                    int64_t timeout_ms) {
  return guard([&] {
    Group &grp = G(g);
    at::NoGradGuard no_grad;
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = ms(timeout_ms);
    std::vector<Dense> dense;
    dense.reserve(n);
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (int32_t i = 0; i < n; i++) {
      dense.emplace_back(T(tensors[i]));
      std::vector<at::Tensor> one{dense.back().c};
      works.push_back(grp.backend->broadcast(one, opts));
    }
    for (auto &w : works) {
      wait(w, timeout_ms);
    }
    for (auto &d : dense) {
      d.back();
    }
  });
}

char *ftd_allgather(ftd_group g, void *input, void **out, int64_t timeout_ms) {
  return guard([&] {
    Group &grp = G(g);
    at::NoGradGuard no_grad;
    c10d::AllgatherOptions opts;
    opts.timeout = ms(timeout_ms);
    std::vector<at::Tensor> in{T(input).contiguous()};
    std::vector<std::vector<at::Tensor>> outs(1);
    for (int i = 0; i < grp.size; i++) {
      outs[0].push_back(at::empty_like(in[0]));
    }
    wait(grp.backend->allgather(outs, in, opts), timeout_ms);
    for (int i = 0; i < grp.size; i++) {
      out[i] = new at::Tensor(std::move(outs[0][i]));
    }
  });
}

char *ftd_barrier(ftd_group g, int64_t timeout_ms) {
  return guard([&] {
    c10d::BarrierOptions opts;
    opts.timeout = ms(timeout_ms);
    wait(G(g).backend->barrier(opts), timeout_ms);
  });
}

} // extern "C"
