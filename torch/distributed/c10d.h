/* c10d.h is the C ABI between package distributed and libtorch's c10d.
   Every function that can fail returns NULL on success or a malloc'd
   message (c10d's own text) that the caller frees with free(). Tensors are
   at::Tensor* handles of package torch; timeouts are in milliseconds. */
#ifndef FINETUNE_TORCH_DISTRIBUTED_C10D_H
#define FINETUNE_TORCH_DISTRIBUTED_C10D_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *ftd_group;

/* Reduction operations, in c10d::ReduceOp's order. */
enum {
  FTD_SUM = 0,
  FTD_AVG = 1,
  FTD_PRODUCT = 2,
  FTD_MIN = 3,
  FTD_MAX = 4
};

/* ftd_nccl_built reports whether the NCCL backend was compiled in. */
int32_t ftd_nccl_built(void);

/* ftd_group_new joins a group of size processes as rank: rank 0 serves
   the TCPStore at addr:port, the others connect to it. backend is "gloo"
   or "nccl". gloo_ifnames, a comma-separated list of network interfaces,
   chooses Gloo's devices; empty uses the loopback interface when
   loopback is set (every rank on this host), else this host's name. */
char *ftd_group_new(const char *backend, const char *addr, int32_t port,
                    int32_t rank, int32_t size, int64_t timeout_ms,
                    const char *gloo_ifnames, int32_t loopback,
                    ftd_group *out);
void ftd_group_free(ftd_group g);

char *ftd_allreduce(ftd_group g, void *const *tensors, int32_t n, int32_t op,
                    int64_t timeout_ms);
char *ftd_broadcast(ftd_group g, void *const *tensors, int32_t n,
                    int32_t root, int64_t timeout_ms);
/* ftd_allgather gathers input from every rank into size new tensors,
   written to out in rank order. */
char *ftd_allgather(ftd_group g, void *input, void **out, int64_t timeout_ms);
char *ftd_barrier(ftd_group g, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
