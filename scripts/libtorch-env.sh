# libtorch-env.sh points the Go build at a libtorch other than Debian's:
# $LIBTORCH if set, else third_party/libtorch (an official zip unpacked
# there, or the include/ and lib/ folders of a PyTorch wheel). Source it:
#
#   . scripts/libtorch-env.sh && go build ./...
#
# It sets the libtorch_env build tag, so the default Debian flags in
# torch/cgo.go are dropped, and links libtorch_cuda with --no-as-needed when
# the libtorch has it: without that the linker drops the library and CUDA is
# silently missing. It links tcmalloc the same way, ahead of libtorch, as
# torch/cgo.go does in the default build, when the linker finds it
# (Debian's and Ubuntu's libtcmalloc-minimal4); without it the build goes
# on with glibc's malloc and says so.
_ft_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
LIBTORCH="${LIBTORCH:-$_ft_root/third_party/libtorch}"
if [ ! -f "$LIBTORCH/lib/libc10.so" ]; then
  echo "libtorch-env: no libtorch at $LIBTORCH (expected lib/libc10.so); set LIBTORCH" >&2
  return 1 2>/dev/null || exit 1
fi
# The C++ ABI must match the library's: official builds before 2.7 came in
# both flavours. (grep reads all of nm's output: with -q, a shell with
# pipefail on would take nm's SIGPIPE for "no".)
if nm -DC "$LIBTORCH/lib/libc10.so" | grep '__cxx11' >/dev/null; then _ft_abi=1; else _ft_abi=0; fi
# libtorch 2.13 and later need C++20, earlier ones C++17.
_ft_ver="$LIBTORCH/include/torch/csrc/api/include/torch/version.h"
_ft_major="$(sed -n 's/^#define TORCH_VERSION_MAJOR \([0-9]*\).*/\1/p' "$_ft_ver" 2>/dev/null)"
_ft_minor="$(sed -n 's/^#define TORCH_VERSION_MINOR \([0-9]*\).*/\1/p' "$_ft_ver" 2>/dev/null)"
_ft_std=c++17
if [ "${_ft_major:-0}" -gt 2 ] || { [ "${_ft_major:-0}" -eq 2 ] && [ "${_ft_minor:-0}" -ge 13 ]; }; then
  _ft_std=c++20
fi
export LIBTORCH
export CGO_CXXFLAGS="-std=$_ft_std -I$LIBTORCH/include -I$LIBTORCH/include/torch/csrc/api/include -D_GLIBCXX_USE_CXX11_ABI=$_ft_abi"
_ft_libs="-L$LIBTORCH/lib -Wl,-rpath,$LIBTORCH/lib"
if [ "$(g++ -print-file-name=libtcmalloc_minimal.so.4)" != libtcmalloc_minimal.so.4 ]; then
  _ft_libs="-Wl,--no-as-needed -l:libtcmalloc_minimal.so.4 -Wl,--as-needed $_ft_libs"
else
  echo "libtorch-env: libtcmalloc_minimal.so.4 not found (install libtcmalloc-minimal4): linking glibc's malloc, which faults every step's activations in afresh" >&2
fi
if [ -f "$LIBTORCH/lib/libtorch_cuda.so" ]; then
  _ft_libs="$_ft_libs -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed"
fi
# NCCL: a CUDA libtorch 2.x has ProcessGroupNCCL; torch/distributed
# compiles it in (USE_C10D_NCCL) when nccl.h and CUDA's headers are found:
# in CUDA_INCLUDE_DIRS (a colon-separated list; default $CUDA_HOME/include,
# CUDA_HOME defaulting to /usr/local/cuda), NCCL_INCLUDE_DIR, libtorch's
# include/ or /usr/include. Without them multi-GPU runs reduce through the
# host with Gloo, and this says so. NCCL itself is linked into the official
# libtorch_cuda; a system libnccl.so.2 is linked only if something still
# needs it (--as-needed), and the Docker image then carries it.
if [ -f "$LIBTORCH/lib/libtorch_cuda.so" ]; then
  _ft_inc="" _ft_nccl="" _ft_cudart=""
  IFS=: read -r -a _ft_dirs <<<"${CUDA_INCLUDE_DIRS:-${CUDA_HOME:-/usr/local/cuda}/include}"
  for _ft_d in "${_ft_dirs[@]}" ${NCCL_INCLUDE_DIR:-} "$LIBTORCH/include" /usr/include; do
    [ -d "$_ft_d" ] || continue
    [ -f "$_ft_d/nccl.h" ] && _ft_nccl=1
    [ -f "$_ft_d/cuda_runtime_api.h" ] && _ft_cudart=1
    case "$_ft_d" in "$LIBTORCH/include" | /usr/include) ;; *) _ft_inc="$_ft_inc -I$_ft_d" ;; esac
  done
  if [ -n "$_ft_nccl" ] && [ -n "$_ft_cudart" ]; then
    CGO_CXXFLAGS="$CGO_CXXFLAGS -DUSE_C10D_NCCL$_ft_inc"
    if [ "$(g++ -print-file-name=libnccl.so.2)" != libnccl.so.2 ]; then
      _ft_libs="$_ft_libs -Wl,--as-needed -l:libnccl.so.2"
    fi
  else
    echo "libtorch-env: ${_ft_nccl:+cuda_runtime_api.h}${_ft_nccl:-nccl.h} not found (set CUDA_HOME, CUDA_INCLUDE_DIRS or NCCL_INCLUDE_DIR): building without NCCL; multi-GPU runs reduce through the host with Gloo" >&2
  fi
  unset _ft_inc _ft_nccl _ft_cudart _ft_dirs _ft_d
fi
export CGO_LDFLAGS="$_ft_libs -ltorch -ltorch_cpu -lc10"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=libtorch_env"
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _ft_root _ft_abi _ft_libs _ft_ver _ft_major _ft_minor _ft_std
