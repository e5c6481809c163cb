#!/usr/bin/env bash
# build-gpu-check.sh prepares build/gpu-check/, what scripts/gpu-check.sh
# uses on a GPU machine without Go (or without the module cache): the
# finetune command, gpubench and the test binaries of torch and torch/amp,
# all built with the shim_shared tag so that they load libfinetune_shim.so,
# which gpu-check.sh compiles there against the machine's libtorch; copies
# of libtcmalloc_minimal.so.4 and libjpeg.so.62, which they find next to
# themselves (and a Go build there links tcmalloc from where the machine has
# none); and the image folder, for a machine without python3. Carry build/gpu-check with
# the repository:
#
#   scripts/build-gpu-check.sh
#   bash scripts/gpu-check.sh        # on the GPU machine, in the repository
#
# A shim_shared finetune has no c10d: it trains alone, as launch --nproc 1
# does, but not data-parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"

out=build/gpu-check
rm -rf "$out"
mkdir -p "$out"
# Linking needs a libfinetune_shim.so: Debian's libtorch serves; the GPU
# machine builds its own.
scripts/build-shim.sh system build/shim
flags=(-tags shim_shared -ldflags=-s\ -w)
go build "${flags[@]}" -o "$out/finetune" ./cmd/finetune
go build "${flags[@]}" -o "$out/gpubench" ./scripts/gpubench
go test -c "${flags[@]}" -o "$out/torch.test" ./torch
go test -c "${flags[@]}" -o "$out/amp.test" ./torch/amp
# Libraries of this machine the binaries need besides libtorch and the C
# and C++ runtime: Ubuntu, for one, has no libjpeg.so.62.
for lib in libtcmalloc_minimal.so.4 libjpeg.so.62; do
  cp "$(g++ -print-file-name=$lib)" "$out/"
done
python3 scripts/mkimages.py "$out/images" 24

# The binaries must run through the shim here too (CUDA tests skip).
"$out/torch.test" -test.run 'TestBuildInfo|TestAutocast|TestCUDA|TestAllocator' >/dev/null
"$out/amp.test" >/dev/null
echo "build-gpu-check: $out is ready ($(du -sh "$out" | cut -f1)); on the GPU machine run: bash scripts/gpu-check.sh"
