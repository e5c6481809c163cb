#!/usr/bin/env bash
# gpu-check.sh checks the CUDA path on a Linux machine with an NVIDIA GPU
# and a CUDA build of PyTorch for python3; it needs g++ and nvidia-smi but
# no Go toolchain and no internet. It runs in the folder that
# scripts/build-gpu-check.sh made (build/gpu-check), wherever that was
# copied:
#
#   bash build/gpu-check/gpu-check.sh
#
# It builds libfinetune_shim.so there against the libtorch inside python3's
# torch package, runs the CUDA tests of torch and torch/amp, then trains
# ResNet50 on synthetic data through the Go bindings (gpubench) and through
# PyTorch's own eager loop (bench.py) with the same settings, and prints
# both throughputs. Peak GPU memory is sampled with nvidia-smi every 0.2 s
# for both runs alike (the device's memory in use, above what was in use
# before the run: the CUDA context and the caching allocator's reserve
# included); bench.py also prints PyTorch's own allocator peaks.
#
# PYTHON selects the interpreter (python3). BENCH_ARGS replaces the
# benchmark settings, which both programs take in this form:
#   --batch 256 --size 224 --amp bf16 --warmup 10 --steps 30
# GPU_INDEX is the nvidia-smi index of the GPU to sample (0). It exits
# non-zero if a test or a benchmark failed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
PYTHON="${PYTHON:-python3}"
BENCH_ARGS="${BENCH_ARGS:---batch 256 --size 224 --amp bf16 --warmup 10 --steps 30}"
read -r -a bench_args <<<"$BENCH_ARGS"
start=$SECONDS

"$PYTHON" - <<'EOF'
import torch
ok = torch.cuda.is_available()
gpu = torch.cuda.get_device_name(0) if ok else "none"
print(f"gpu-check: python3 torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, GPU {gpu}")
if not ok:
    raise SystemExit("gpu-check: python3's torch sees no GPU")
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

torch_dir="$("$PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
bash ./build-shim.sh "$torch_dir" "$here"
# libtorch_cuda finds the CUDA libraries of the nvidia-* wheels through its
# run path; listing their folders too makes the search independent of how
# the wheel was installed.
nv_libs="$(find "$(dirname "$torch_dir")/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | paste -sd: - || true)"
export LD_LIBRARY_PATH="$here${nv_libs:+:$nv_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

failed=()
tests_log="$(mktemp)"
go_out="$(mktemp)"
py_out="$(mktemp)"
trap 'rm -f "$tests_log" "$go_out" "$py_out"' EXIT
echo "== torch tests"
./torch.test -test.v -test.run 'CUDA|Autocast|BuildInfo|SelectDevice|Transfers|SetData|CuDNN' | tee "$tests_log" || failed+=(torch-tests)
echo "== torch/amp tests"
./amp.test -test.v | tee -a "$tests_log" || failed+=(amp-tests)
# The CUDA tests skip where libtorch sees no GPU; here that is a failure
# (a shim built without libtorch_cuda, say).
if grep -- '--- SKIP: TestCUDA' "$tests_log" >/dev/null; then
  failed+=(cuda-tests-skipped)
fi

# gpu_mem prints the MiB in use on the GPU, 0 when nvidia-smi cannot tell.
gpu_mem() {
  local v
  v="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "${GPU_INDEX:-0}" 2>/dev/null | head -n1 | tr -dc '0-9' || true)"
  echo "${v:-0}"
}

# measure runs its arguments, sampling GPU memory until they finish, then
# prints the peak above what was in use before.
measure() {
  local base peak v pid rc
  base="$(gpu_mem)"
  peak="$base"
  "$@" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    v="$(gpu_mem)"
    if [ "$v" -gt "$peak" ]; then peak="$v"; fi
    sleep 0.2
  done
  if wait "$pid"; then rc=0; else rc=$?; fi
  echo "  peak GPU memory (nvidia-smi): $((peak - base)) MiB above the $base MiB in use before"
  return "$rc"
}

echo "== ResNet50 training throughput: ${BENCH_ARGS}"
measure timeout 300 ./gpubench --device cuda "${bench_args[@]}" >"$go_out" || failed+=(gpubench)
cat "$go_out"
measure timeout 300 "$PYTHON" bench.py "${bench_args[@]}" >"$py_out" || failed+=(bench.py)
cat "$py_out"

echo "== summary ($((SECONDS - start)) s)"
grep -h 'images/s' "$go_out" "$py_out" || true
if ((${#failed[@]})); then
  echo "gpu-check: FAILED: ${failed[*]}"
  exit 1
fi
echo "gpu-check: ok"
