#!/usr/bin/env bash
# install-libtorch-cuda.sh downloads an official CUDA build of libtorch
# into third_party/libtorch (or $LIBTORCH), checks that its C++ ABI is the
# compiler's, and says how to build against it:
#
#   scripts/install-libtorch-cuda.sh
#   . scripts/libtorch-env.sh && go build ./...
#
# LIBTORCH_VERSION (2.5.1) and LIBTORCH_CUDA (cu124) pick the build from
# download.pytorch.org; LIBTORCH_URL replaces the whole address (for a
# release named otherwise). An existing libtorch is kept unless FORCE=1.
# The zip is large (about 2.5 GB): it bundles CUDA's runtime, cuBLAS and
# cuDNN, so only the NVIDIA driver is needed besides.
#
# The download is checked against LIBTORCH_SHA256, else the digest pinned
# below for its file name, and refused (with both digests said) when it
# differs. PyTorch publishes no digest beside its libtorch zips: pin one
# taken from a download you trust (sha256sum), here or in LIBTORCH_SHA256;
# with none the script stops before downloading.
#
#   scripts/install-libtorch-cuda.sh --check-abi path/to/libc10.so
#
# only checks a library's C++ ABI against the compiler's.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="${LIBTORCH_VERSION:-2.5.1}"
cuda="${LIBTORCH_CUDA:-cu124}"
url="${LIBTORCH_URL:-https://download.pytorch.org/libtorch/$cuda/libtorch-cxx11-abi-shared-with-deps-$version%2B$cuda.zip}"
dest="${LIBTORCH:-$root/third_party/libtorch}"

# pinned_sha256 prints the SHA-256 pinned for a libtorch zip's file name:
# add a line "NAME DIGEST" for each build taken into use.
pinned_sha256() {
  while read -r name sum; do
    [ "$name" = "$1" ] && { echo "$sum"; return; }
  done <<'PINNED'
PINNED
}

# compiler_abi prints g++'s default _GLIBCXX_USE_CXX11_ABI, 1 on GCC 5 and
# later unless the distribution changed it.
compiler_abi() {
  local v
  v="$(printf '#include <string>\n' | g++ -x c++ -E -dM - 2>/dev/null | sed -n 's/^#define _GLIBCXX_USE_CXX11_ABI \([01]\)$/\1/p')"
  echo "${v:-1}"
}

# library_abi prints 1 when the library uses the C++11 ABI (std::__cxx11
# names in its interface), else 0. grep reads all of nm's output: with -q
# it would stop early, and pipefail would take nm's SIGPIPE for "no".
library_abi() {
  if nm -DC "$1" | grep '__cxx11' >/dev/null; then echo 1; else echo 0; fi
}

# check_abi fails unless the library at $1 has the compiler's C++ ABI.
check_abi() {
  local want have
  if [ ! -f "$1" ]; then
    echo "install-libtorch-cuda: no library at $1" >&2
    return 1
  fi
  want="$(compiler_abi)"
  have="$(library_abi "$1")"
  if [ "$have" != "$want" ]; then
    echo "install-libtorch-cuda: $1 uses _GLIBCXX_USE_CXX11_ABI=$have but g++ defaults to $want;" >&2
    echo "  take the cxx11-abi build of libtorch (or the pre-cxx11 one for a compiler set to 0)" >&2
    return 1
  fi
  echo "install-libtorch-cuda: C++ ABI of $1 matches g++ (_GLIBCXX_USE_CXX11_ABI=$have)"
}

if [ "${1:-}" = --check-abi ]; then
  check_abi "${2:?usage: $0 --check-abi LIBRARY}"
  exit
fi

if [ -f "$dest/lib/libc10.so" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "install-libtorch-cuda: keeping the libtorch in $dest (FORCE=1 replaces it)"
  check_abi "$dest/lib/libc10.so"
else
  for tool in curl unzip nm sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || { echo "install-libtorch-cuda: $tool is needed" >&2; exit 1; }
  done
  zip_name="$(basename "${url//%2B/+}")"
  sum="${LIBTORCH_SHA256:-$(pinned_sha256 "$zip_name")}"
  if [ -z "$sum" ]; then
    echo "install-libtorch-cuda: no SHA-256 is pinned for $zip_name and LIBTORCH_SHA256 is not set:" >&2
    echo "  PyTorch publishes none; take the digest of a download you trust (sha256sum) and give it" >&2
    echo "  as LIBTORCH_SHA256 (docker build --build-arg LIBTORCH_SHA256=...), or pin it in $0" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$dest")"
  tmp="$(mktemp -d "$(dirname "$dest")/.libtorch-download.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "install-libtorch-cuda: downloading $url"
  "$root/scripts/fetch.sh" "$url" "$tmp/libtorch.zip" "$sum"
  unzip -q "$tmp/libtorch.zip" -d "$tmp"
  rm "$tmp/libtorch.zip"
  check_abi "$tmp/libtorch/lib/libc10.so"
  rm -rf "$dest"
  mv "$tmp/libtorch" "$dest"
fi
if [ ! -f "$dest/lib/libtorch_cuda.so" ]; then
  echo "install-libtorch-cuda: warning: $dest has no libtorch_cuda.so: it is a CPU build" >&2
fi
env_prefix=""
[ "$dest" = "$root/third_party/libtorch" ] || env_prefix="export LIBTORCH=$dest && "
echo "install-libtorch-cuda: libtorch $(cat "$dest/build-version" 2>/dev/null || echo "in $dest") is ready. Build with:"
echo "  ${env_prefix}. scripts/libtorch-env.sh && go build ./..."
