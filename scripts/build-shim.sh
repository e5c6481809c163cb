#!/usr/bin/env bash
# build-shim.sh compiles torch/shim.cpp into libfinetune_shim.so, the
# library that binaries built with the shim_shared tag load, against any
# libtorch:
#
#   scripts/build-shim.sh [LIBTORCH_DIR] [OUT_DIR]
#
# LIBTORCH_DIR is an official libtorch zip unpacked, or a PyTorch wheel's
# torch/ folder (both have include/ and lib/); "system", or no argument,
# means Debian's libtorch-dev. OUT_DIR defaults to build/shim. The library
# records LIBTORCH_DIR/lib as its run path, links libtorch_cuda when the
# libtorch has it (with --no-as-needed: nothing in the shim calls it, and
# without it CUDA silently goes missing), and is compiled with the C++ ABI
# the libtorch was built with. It needs only g++ and binutils; the shim
# source is looked for next to this script first, then in ../torch.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
libtorch="${1:-system}"
out="${2:-$here/../build/shim}"

src=""
for d in "$here" "$here/../torch"; do
  if [ -f "$d/shim.cpp" ] && [ -f "$d/shim.h" ]; then src="$d"; break; fi
done
if [ -z "$src" ]; then
  echo "build-shim: shim.cpp and shim.h not found next to $0 or in ../torch" >&2
  exit 1
fi

if [ "$libtorch" = system ]; then
  libdir="$(cd "$(dirname "$(g++ -print-file-name=libc10.so)")" && pwd)"
  includes=(-I/usr/include/torch/csrc/api/include)
  version_h=/usr/include/torch/csrc/api/include/torch/version.h
  links=()
else
  libtorch="$(cd "$libtorch" && pwd)"
  libdir="$libtorch/lib"
  includes=(-I"$libtorch/include" -I"$libtorch/include/torch/csrc/api/include")
  version_h="$libtorch/include/torch/csrc/api/include/torch/version.h"
  [ -f "$version_h" ] || version_h="$libtorch/include/torch/version.h"
  links=(-L"$libdir" -Wl,-rpath,"$libdir")
fi
if [ ! -f "$libdir/libc10.so" ]; then
  echo "build-shim: no libc10.so in $libdir: is $libtorch a libtorch?" >&2
  exit 1
fi

# cxx11_abi prints 1 when the library uses GCC's C++11 ABI (std::__cxx11
# strings in its interface), else 0. grep reads all of nm's output: with
# -q it would stop early, and pipefail would take nm's SIGPIPE for "no".
cxx11_abi() {
  if nm -DC "$1" | grep '__cxx11' >/dev/null; then echo 1; else echo 0; fi
}
abi="$(cxx11_abi "$libdir/libc10.so")"

# libtorch 2.13 and later need C++20.
major=0 minor=0
if [ -f "$version_h" ]; then
  major="$(sed -n 's/^#define TORCH_VERSION_MAJOR \([0-9]*\).*/\1/p' "$version_h")"
  minor="$(sed -n 's/^#define TORCH_VERSION_MINOR \([0-9]*\).*/\1/p' "$version_h")"
fi
std=c++17
if [ "${major:-0}" -gt 2 ] || { [ "${major:-0}" -eq 2 ] && [ "${minor:-0}" -ge 13 ]; }; then
  std=c++20
fi

if [ -f "$libdir/libtorch_cuda.so" ]; then
  links+=(-Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed)
fi
links+=(-ltorch -ltorch_cpu -lc10)

mkdir -p "$out"
out="$(cd "$out" && pwd)"
echo "build-shim: libtorch ${major:-?}.${minor:-?} from $libdir (C++ ABI $abi, $std) -> $out/libfinetune_shim.so"
g++ -std="$std" -O2 -fPIC -shared -D_GLIBCXX_USE_CXX11_ABI="$abi" \
  -Wno-unused-parameter -Wno-deprecated-declarations \
  "${includes[@]}" "$src/shim.cpp" -o "$out/libfinetune_shim.so.tmp" \
  -Wl,-soname,libfinetune_shim.so "${links[@]}"
mv "$out/libfinetune_shim.so.tmp" "$out/libfinetune_shim.so"
