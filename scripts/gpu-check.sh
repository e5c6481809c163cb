#!/usr/bin/env bash
# gpu-check.sh checks the whole engine on a CUDA machine in one command, in
# at most 8 minutes, without internet:
#
#   bash scripts/gpu-check.sh          # on the GPU: every step on cuda
#   bash scripts/gpu-check.sh --cpu    # the same steps on the CPU
#
# It finds a libtorch ($LIBTORCH, third_party/libtorch, or the torch
# package of python3: a CUDA PyTorch wheel has include/ and lib/; --cpu
# also takes Debian's libtorch-dev), builds the finetune command, the
# torch and torch/amp test binaries and gpubench against it when Go and
# the module cache are there, else uses those in build/gpu-check (made by
# scripts/build-gpu-check.sh, shim_shared builds) with the shim compiled
# here. It writes a tiny image folder (scripts/mkimages.py: 2 classes of
# 24 PNGs) and then runs, each step with its own timeout, a failed one not
# stopping the rest:
#
#   version      finetune version (the libtorch, the GPU, the allocator)
#   nccl         the CUDA build has NCCL's process group (version's
#                process_groups); launch then uses it
#   allocator    the binaries run on tcmalloc (a machine without it gets
#                build/gpu-check's copy when there is one)
#   torch-tests  the CUDA tests of torch and torch/amp
#   run-adapt    finetune run, train.batchnorm: adapt
#   run-train    finetune run, train.batchnorm: train
#   eval         finetune eval of run-train's best.safetensors
#   predict      finetune predict with it
#   launch       finetune launch --nproc 1 -- run
#   gpubench     ResNet50 training throughput through the Go bindings
#   bench.py     the same through PyTorch's eager loop (python3's torch)
#
# Logs go to build/gpu-check/run/logs. The last line is one JSON object:
# "result" (pass or fail), a pass/fail/skip line per check and the
# throughputs in images/s. It exits non-zero when a check failed.
#
# Settings (environment): GPU_CHECK_BUDGET (seconds for everything, 480),
# BENCH_ARGS (gpubench and bench.py, "--batch 256 --size 224 --amp bf16
# --warmup 5 --steps 15"; --cpu: a batch of 8 at 64 pixels), ARCH and
# IMAGE_SIZE of the runs (resnet50 at 96; --cpu: resnet18 at 32), PYTHON
# (python3), GO (go).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
start=$SECONDS
budget="${GPU_CHECK_BUDGET:-480}"

device=cuda
if [ "${1:-}" = --cpu ]; then
  device=cpu
elif [ -n "${1:-}" ]; then
  echo "usage: scripts/gpu-check.sh [--cpu]" >&2
  exit 2
fi
if [ "$device" = cuda ]; then
  BENCH_ARGS="${BENCH_ARGS:---batch 256 --size 224 --amp bf16 --warmup 5 --steps 15}"
  ARCH="${ARCH:-resnet50}" IMAGE_SIZE="${IMAGE_SIZE:-96}"
else
  BENCH_ARGS="${BENCH_ARGS:---batch 8 --size 64 --amp off --warmup 1 --steps 2}"
  ARCH="${ARCH:-resnet18}" IMAGE_SIZE="${IMAGE_SIZE:-32}"
fi
read -r -a bench_args <<<"$BENCH_ARGS"
PYTHON="${PYTHON:-python3}"
GO="${GO:-go}"
command -v "$GO" >/dev/null 2>&1 || { [ "$GO" = go ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; }

prebuilt="$root/build/gpu-check"
work="$prebuilt/run"
rm -rf "$work"
mkdir -p "$work/logs" "$work/bin"

declare -A result
order=()
note() { echo "gpu-check: $*"; }
# record NAME STATUS sets a check's outcome: pass, fail: WHY or skip: WHY.
record() {
  result[$1]="$2"
  order+=("$1")
  note "$1: $2"
}

# step NAME SECONDS CMD... runs CMD with the step's timeout, cut to what is
# left of the budget, its output in logs/NAME.log, and records the outcome.
step() {
  local name="$1" limit="$2" left rc last
  shift 2
  left=$((budget - (SECONDS - start) - 5))
  if ((left < 10)); then
    record "$name" "skip: out of time (GPU_CHECK_BUDGET=$budget)"
    return 1
  fi
  ((limit > left)) && limit=$left
  note "== $name (timeout ${limit}s): $*"
  # A shell function runs in a child bash, which timeout can kill.
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >"$work/logs/$name.log" 2>&1
  rc=$?
  tail -n 5 "$work/logs/$name.log" | sed 's/^/  | /'
  last="$(grep -v '^[[:space:]]*$' "$work/logs/$name.log" | tail -n 1 | cut -c1-200)"
  case $rc in
    0) record "$name" pass ;;
    124 | 137) record "$name" "fail: timed out after ${limit}s (logs/$name.log)" ;;
    *) record "$name" "fail: exit status $rc: $last (logs/$name.log)" ;;
  esac
  return "$rc"
}

# skip_all NAMES... records why the steps that need a binary cannot run.
skip_all() {
  local why="$1" n
  shift
  for n in "$@"; do record "$n" "skip: $why"; done
}

# --- libtorch
libtorch="" rejected=()
# Python runs in / here: in the repository, "import torch" finds torch/.
torch_pkg="$(cd / && "$PYTHON" -c 'import importlib.util as u; s = u.find_spec("torch"); print(s.submodule_search_locations[0] if s else "")' 2>/dev/null || true)"
[ -n "$torch_pkg" ] || rejected+=("$PYTHON has no torch package;")
for d in "${LIBTORCH:-}" "$root/third_party/libtorch" "$torch_pkg"; do
  [ -n "$d" ] || continue
  if [ ! -f "$d/lib/libc10.so" ] || [ ! -d "$d/include/torch" ]; then
    rejected+=("$d has no lib/libc10.so and include/torch;")
  elif [ "$device" = cuda ] && [ ! -f "$d/lib/libtorch_cuda.so" ]; then
    rejected+=("$d has no lib/libtorch_cuda.so (a CPU build);")
  else
    libtorch="$(cd "$d" && pwd)"
    break
  fi
done
if [ -z "$libtorch" ] && [ "$device" = cpu ] && [ -f /usr/include/torch/csrc/api/include/torch/version.h ]; then
  libtorch=system
fi
if [ -z "$libtorch" ]; then
  record libtorch "fail: no ${device/cuda/CUDA }libtorch: ${rejected[*]} set LIBTORCH, unpack one into third_party/libtorch or install a CUDA PyTorch wheel for $PYTHON"
else
  record libtorch "pass: $libtorch"
fi
# libtorch_cuda of a wheel finds the nvidia-* wheels' libraries through its
# run path; listing their folders makes that independent of the install.
# Their include folders (nccl.h, CUDA's headers) let libtorch-env.sh
# compile NCCL's process group in when there is no CUDA toolkit.
if [ -n "$torch_pkg" ]; then
  nv_libs="$(find "$(dirname "$torch_pkg")/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | paste -sd: - || true)"
  [ -n "$nv_libs" ] && export LD_LIBRARY_PATH="$nv_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if [ ! -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda_runtime_api.h" ] && [ -z "${CUDA_INCLUDE_DIRS:-}" ]; then
    nv_inc="$(find "$(dirname "$torch_pkg")/nvidia" -maxdepth 3 -type d -name include 2>/dev/null | paste -sd: - || true)"
    [ -n "$nv_inc" ] && export CUDA_INCLUDE_DIRS="$nv_inc"
  fi
fi

# --- the binaries: built here with Go, else build/gpu-check's with the
# shim built here.
bin=""
build_go() {
  # Offline: fail at once where a module or toolchain would be downloaded.
  export GOPROXY=off GOTOOLCHAIN=local
  # A machine without tcmalloc links build/gpu-check's copy, and finds it
  # at run time in bin, on LD_LIBRARY_PATH.
  if [ "$(g++ -print-file-name=libtcmalloc_minimal.so.4)" = libtcmalloc_minimal.so.4 ] &&
    [ -f "$prebuilt/libtcmalloc_minimal.so.4" ]; then
    cp "$prebuilt/libtcmalloc_minimal.so.4" "$work/bin/"
    export LIBRARY_PATH="$work/bin${LIBRARY_PATH:+:$LIBRARY_PATH}"
  fi
  if [ "$libtorch" != system ]; then
    # shellcheck source=libtorch-env.sh
    LIBTORCH="$libtorch" . "$root/scripts/libtorch-env.sh" || return 1
  fi
  "$GO" build -o "$work/bin/finetune" ./cmd/finetune &&
    "$GO" build -o "$work/bin/gpubench" ./scripts/gpubench &&
    "$GO" test -c -o "$work/bin/torch.test" ./torch &&
    "$GO" test -c -o "$work/bin/amp.test" ./torch/amp
}
build_shim() {
  cp "$prebuilt"/{finetune,gpubench,torch.test,amp.test} "$prebuilt"/lib*.so.* "$work/bin/" &&
    bash scripts/build-shim.sh "$libtorch" "$work/bin"
}
export -f build_go build_shim
export root work prebuilt libtorch GO
if [ -z "$libtorch" ]; then
  record build "skip: no libtorch"
elif command -v "$GO" >/dev/null 2>&1 && step build 300 build_go; then
  bin="$work/bin"
elif [ -x "$prebuilt/finetune" ]; then
  if [ -n "${result[build]:-}" ]; then
    result[build]="skip: go build failed (logs/build.log); build/gpu-check's binaries instead"
  else
    record build "skip: no Go ($GO)"
  fi
  # The prebuilt binaries find the shim and tcmalloc next to themselves.
  step build-shim 120 build_shim && bin="$work/bin"
else
  [ -n "${result[build]:-}" ] || record build "fail: no Go ($GO) and no prebuilt $prebuilt/finetune (scripts/build-gpu-check.sh makes it)"
fi
export LD_LIBRARY_PATH="$work/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# --- the images
images="$work/images"
if "$PYTHON" scripts/mkimages.py "$images" 24 >"$work/logs/images.log" 2>&1; then
  record images pass
elif [ -d "$prebuilt/images" ]; then
  cp -r "$prebuilt/images" "$images" && record images "pass (build/gpu-check/images: no $PYTHON)"
else
  record images "fail: $PYTHON cannot run scripts/mkimages.py and there is no build/gpu-check/images (logs/images.log)"
fi

# --- the checks
torch_tests() {
  "$bin/torch.test" -test.v -test.run 'CUDA|Autocast|BuildInfo|SelectDevice|Transfers|SetData|CuDNN' &&
    "$bin/amp.test" -test.v || return 1
  # The CUDA tests skip where libtorch sees no GPU: on the GPU that is a
  # failure (a build without libtorch_cuda, say).
  if [ "$device" = cuda ] && grep -- '--- SKIP: TestCUDA' "$work/logs/torch-tests.log" >/dev/null; then
    echo "gpu-check: CUDA tests skipped: libtorch sees no GPU"
    return 1
  fi
}
# run_ok DIR BATCHNORM [LAUNCH...] trains a tiny run (2 short stages, no
# pretrained weights) into $work/DIR, through LAUNCH when given, and
# checks that the checkpoint is there.
run_ok() {
  local dir="$1" bn="$2"
  shift 2
  "$ft" "$@" run --data.train "$images" --model.arch "$ARCH" --model.weights none \
    --data.image_size "$IMAGE_SIZE" --data.batch_size 8 --device "$device" \
    --stages head:1:all,finetune:1:layer3 --train.batchnorm "$bn" --output.dir "$work/$dir" &&
    test -s "$work/$dir/best.safetensors"
}
ft="$bin/finetune"
export -f run_ok torch_tests
export ft bin device images ARCH IMAGE_SIZE
engine=(version nccl allocator torch-tests run-adapt run-train eval predict launch gpubench)
if [ -z "$bin" ]; then
  skip_all "no finetune binary (see build)" "${engine[@]}"
else
  step version 30 "$ft" version --format json
  # The throughput is tcmalloc's only where the binaries run on it.
  allocator="$(grep -o '"allocator":"[^"]*"' "$work/logs/version.log" | cut -d'"' -f4)"
  if [[ "$allocator" == tcmalloc* ]]; then
    record allocator pass
  else
    record allocator "fail: malloc is ${allocator:-unknown}, not tcmalloc: install libtcmalloc-minimal4, or carry build/gpu-check/libtcmalloc_minimal.so.4"
  fi
  # A CUDA build without NCCL's process group would reduce multi-GPU
  # gradients through the host with Gloo.
  if [ "$device" = cpu ]; then
    record nccl "skip: CUDA only"
  elif grep '"process_groups":\[\]' "$work/logs/version.log" >/dev/null; then
    record nccl "skip: build/gpu-check's shim_shared binaries have no distributed training"
  elif grep -o '"process_groups":\[[^]]*\]' "$work/logs/version.log" | grep '"nccl"' >/dev/null; then
    record nccl pass
  else
    record nccl "fail: the binary has no NCCL process group (logs/build.log: libtorch-env's message says which header was missing)"
  fi
  step torch-tests 90 torch_tests

  if [[ "${result[images]}" == pass* ]]; then
    step run-adapt 60 run_ok adapt adapt
    step run-train 60 run_ok train train
    if [ -s "$work/train/best.safetensors" ]; then
      step eval 30 "$ft" eval --checkpoint "$work/train/best.safetensors" --data "$images" --device "$device" --format json
      step predict 30 "$ft" predict --checkpoint "$work/train/best.safetensors" --device "$device" --format json "$images/red"
    else
      skip_all "run-train wrote no best.safetensors" eval predict
    fi
    step launch 90 run_ok launch train launch --nproc 1 --
    # On CUDA the rank says it uses NCCL, not Gloo through the host.
    if [[ "${result[nccl]}" == pass* ]] && [[ "${result[launch]}" == pass* ]] &&
      ! grep 'data-parallel: rank 0 of 1 (nccl)' "$work/logs/launch.log" >/dev/null; then
      result[launch]="fail: the CUDA launch did not use NCCL (logs/launch.log)"
    fi
  else
    skip_all "no images" run-adapt run-train eval predict launch
  fi
  step gpubench 120 "$bin/gpubench" --device "$device" "${bench_args[@]}"
fi
if [ "$device" = cpu ]; then
  record bench.py "skip: CUDA only"
elif (cd / && "$PYTHON" -c 'import sys, torch, torchvision; sys.exit(0 if torch.cuda.is_available() else 1)') >/dev/null 2>&1; then
  step bench.py 120 "$PYTHON" scripts/gpubench/bench.py "${bench_args[@]}"
else
  record bench.py "skip: $PYTHON has no CUDA torch with torchvision"
fi

# --- the summary: one JSON line
json_str() { local s="${1//\\/\\\\}"; s="${s//\"/\\\"}"; printf '"%s"' "$s"; }
rate() { grep -ho '[0-9.]* images/s' "$work/logs/$1.log" 2>/dev/null | tail -n1 | cut -d' ' -f1; }
failed=0
checks=""
for n in "${order[@]}"; do
  [[ "${result[$n]}" == fail* ]] && failed=1
  checks+="${checks:+,}$(json_str "$n"):$(json_str "${result[$n]}")"
done
go_rate="$(rate gpubench)" py_rate="$(rate bench.py)"
status=pass
((failed)) && status=fail
echo "{\"result\":\"$status\",\"device\":\"$device\",\"libtorch\":$(json_str "$libtorch"),\"allocator\":$(json_str "${allocator:-}"),\"seconds\":$((SECONDS - start)),\"images_per_s\":{\"go\":${go_rate:-null},\"pytorch\":${py_rate:-null}},\"bench\":$(json_str "$BENCH_ARGS"),\"checks\":{$checks}}"
exit "$failed"
