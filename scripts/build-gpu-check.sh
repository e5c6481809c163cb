#!/usr/bin/env bash
# build-gpu-check.sh prepares build/gpu-check/, everything that
# scripts/gpu-check.sh needs on a GPU machine without Go or internet: the
# test binaries of torch and torch/amp and the gpubench program, all built
# with the shim_shared tag so that they load libfinetune_shim.so at run
# time, and the sources gpu-check.sh builds that library from (shim.cpp,
# shim.h, guard.h, build-shim.sh) there, against the machine's own libtorch.
#
#   scripts/build-gpu-check.sh
#   scp -r build/gpu-check gpu-host: && ssh gpu-host bash gpu-check/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"

out=build/gpu-check
rm -rf "$out"
mkdir -p "$out"
# Linking needs a libfinetune_shim.so: Debian's libtorch serves; the GPU
# machine builds its own.
scripts/build-shim.sh system build/shim
go test -c -tags shim_shared -o "$out/torch.test" ./torch/
go test -c -tags shim_shared -o "$out/amp.test" ./torch/amp/
go build -tags shim_shared -o "$out/gpubench" ./scripts/gpubench/
cp torch/shim.cpp torch/shim.h torch/guard.h scripts/build-shim.sh scripts/gpu-check.sh scripts/gpubench/bench.py "$out/"

# The binaries must run through the shim here too (CUDA tests skip).
"$out/torch.test" -test.run 'TestBuildInfo|TestAutocast|TestCUDA' >/dev/null
"$out/amp.test" >/dev/null
echo "build-gpu-check: $out is ready ($(du -sh "$out" | cut -f1)); on the GPU machine run: bash $out/gpu-check.sh"
