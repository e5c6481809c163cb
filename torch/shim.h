/* shim.h is the C ABI between Go and libtorch. Every function that can fail
   returns NULL on success or a malloc'd message (libtorch's own text) that
   the caller frees with free(). Tensors cross the boundary as opaque handles
   to heap-allocated at::Tensor values. */
#ifndef FINETUNE_TORCH_SHIM_H
#define FINETUNE_TORCH_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *ft_tensor;
typedef void *ft_op;
typedef void *ft_generator;

/* Argument tags for ft_op_call. Each tag consumes values from the arrays in
   order: ints, doubles, tensors, and bytes for strings. */
enum {
  FT_ARG_NONE = 0,
  FT_ARG_TENSOR = 1,      /* 1 tensor */
  FT_ARG_INT = 2,         /* 1 int */
  FT_ARG_DOUBLE = 3,      /* 1 double */
  FT_ARG_BOOL = 4,        /* 1 int */
  FT_ARG_INT_LIST = 5,    /* 1 int n, then n ints */
  FT_ARG_TENSOR_LIST = 6, /* 1 int n, then n tensors */
  FT_ARG_DEVICE = 7,      /* 2 ints: type, index */
  FT_ARG_STRING = 8,      /* 1 int n, then n bytes */
  FT_ARG_GENERATOR = 9,   /* 1 int: index into generators */
  FT_ARG_DOUBLE_LIST = 10,/* 1 int n, then n doubles */
  FT_ARG_OPT_TENSOR_LIST = 11 /* 1 int n, then n tensors (NULL is None) */
};

/* Result tags written by ft_op_call. */
enum {
  FT_OUT_NONE = 0,
  FT_OUT_TENSOR = 1,
  FT_OUT_INT = 2,
  FT_OUT_DOUBLE = 3,
  FT_OUT_BOOL = 4,
  FT_OUT_TENSOR_LIST = 5 /* count in ints, tensors follow in out_tensors */
};

char *ft_op_find(const char *name, const char *overload, ft_op *out);
char *ft_op_schema(ft_op op, char **out);
/* ft_op_call calls op boxed, through the dispatcher (so autograd, autocast
   and device dispatch apply as for any PyTorch call). Arguments are
   described by ntags tags that consume values from the flat arrays. Missing
   trailing arguments take the schema's defaults. Results are written as
   tags to out_tags (at most out_cap), with their values in out_ints and
   out_doubles at the same index; result tensors go to out_tensors (at most
   tensor_cap; a larger count is reported in *ntensors and the extra handles
   go to *overflow, a malloc'd array the caller frees). With discard set no
   result handles are made. */
char *ft_op_call(ft_op op, int32_t ntags, const uint8_t *tags,
                 const int64_t *ints, const double *doubles,
                 const ft_tensor *tensors, const char *bytes,
                 const ft_generator *generators, int32_t discard,
                 int32_t out_cap, uint8_t *out_tags, int64_t *out_ints,
                 double *out_doubles, int32_t *nout, int32_t tensor_cap,
                 ft_tensor *out_tensors, int32_t *ntensors,
                 ft_tensor **overflow);

void ft_tensor_free(ft_tensor t);
char *ft_tensor_from_data(const void *data, int64_t nbytes, int8_t dtype,
                          const int64_t *shape, int32_t ndim, ft_tensor *out);
char *ft_tensor_copy_to(ft_tensor t, void *data, int64_t nbytes, int8_t dtype);
char *ft_tensor_info(ft_tensor t, int8_t *dtype, int32_t *ndim,
                     int64_t *shape, int32_t cap, int32_t *device_type,
                     int32_t *device_index, int32_t *requires_grad,
                     int32_t *defined);
char *ft_tensor_shallow_copy(ft_tensor t, ft_tensor *out);
char *ft_tensor_set_requires_grad(ft_tensor t, int32_t on);
char *ft_tensor_grad(ft_tensor t, ft_tensor *out);
char *ft_tensor_set_grad(ft_tensor t, ft_tensor grad);
char *ft_tensor_backward(ft_tensor t, ft_tensor grad, int32_t retain_graph);
char *ft_tensor_is_contiguous(ft_tensor t, int32_t memory_format, int32_t *out);
char *ft_tensor_data_ptr(ft_tensor t, void **out);
char *ft_tensor_is_leaf(ft_tensor t, int32_t *out);

int32_t ft_grad_enabled(void);
void ft_set_grad_enabled(int32_t on);

void ft_manual_seed(uint64_t seed);
char *ft_generator_new(uint64_t seed, ft_generator *out);
void ft_generator_free(ft_generator g);
char *ft_generator_set_seed(ft_generator g, uint64_t seed);
char *ft_generator_get_state(ft_generator g, ft_tensor *out);
char *ft_generator_set_state(ft_generator g, ft_tensor state);

void ft_set_num_threads(int32_t n);
int32_t ft_get_num_threads(void);
int32_t ft_cuda_is_available(void);
int32_t ft_cuda_device_count(void);
char *ft_version(char **out);

/* CUDA, mixed precision and build information. Device types are
   libtorch's codes (0 CPU, 1 CUDA), dtypes its ScalarType codes. */

/* ft_autocast_enter turns autocast on for device_type with dtype on the
   calling thread, as entering torch.autocast does, and stores the state it
   replaced in the prev_ values for ft_autocast_exit. */
char *ft_autocast_enter(int32_t device_type, int8_t dtype,
                        int32_t *prev_enabled, int8_t *prev_dtype,
                        int32_t *prev_cache);
/* ft_autocast_exit restores the state ft_autocast_enter saved and, when it
   closes the outermost autocast region, clears the cast cache. */
char *ft_autocast_exit(int32_t device_type, int32_t prev_enabled,
                       int8_t prev_dtype, int32_t prev_cache);
char *ft_autocast_enabled(int32_t device_type, int32_t *out);

void ft_set_cudnn_benchmark(int32_t on);
int32_t ft_cudnn_benchmark(void);
char *ft_cuda_synchronize(int64_t device_index);
/* ft_build_info describes the libtorch in use. cuda_version is CUDART's
   (12040 for 12.4) and cudnn_version cuDNN's, both 0 when absent;
   cuda_built is 1 when libtorch's CUDA library is loaded. */
char *ft_build_info(char **version, int32_t *cuda_built,
                    int64_t *cuda_version, int64_t *cudnn_version,
                    int32_t *cuda_available, int32_t *device_count);

#ifdef __cplusplus
}
#endif
#endif
