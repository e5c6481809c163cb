#!/usr/bin/env bash
# run.sh runs every benchmark that compares finetune with PyTorch on the
# same libtorch (Debian's python3-torch 1.13, run with /usr/bin/python3),
# and then the loader benchmark, in one invocation. BENCHMARKS.md at the
# repository root records a run of it.
#
#   bench/run.sh                 # the full run (about 65 minutes on 2 cores)
#   bench/run.sh --only seed --skip-loader   # the seed scenario alone (about 35 minutes)
#   bench/run.sh --quick --no-wait --skip-loader   # a short check while developing
#   bench/run.sh --only seed --quick --no-wait --skip-loader   # the seed scenario's smoke run
#   bench/run.sh --only seedwhole --seed-runs 1 --skip-loader   # the whole default run against a PyTorch epoch
#
# Options:
#   --no-wait        don't wait for the machine to quieten first (by default
#                    it polls /proc/loadavg every 30 s, up to 20 minutes,
#                    until the 1-minute load average is below 1.0)
#   --quick          short blocks, a short RSS run and the seed scenario's
#                    smoke run: ResNet18, 2 × 40 images, one run a side
#                    (development only)
#   --only LIST      comma-separated subset of train50,train50b16,
#                    train50b32,train18,frozen,infer50,seed, or seedwhole
#                    (not part of the full run)
#   --skip-loader    leave out the loader benchmark
#   --threads N      intra-op threads of both libraries (default: all cores)
#   --pairs N        measured A/B pairs after warm-up (default 7)
#   --seed-runs N    runs of each tool in the seed scenario (default 3)
#   --cpuprofile P   write CPU profiles of the Go side to P.<bench>.pprof
#   --py-first       run PyTorch first in each training pair (an order check)
#
# Output: the log on stdout and in bench/out/run.log, the results as JSON
# in bench/out/results.json and as Markdown in bench/out/results.md; the
# seed scenario's in bench/out/seed.json and bench/out/seed.md, the whole
# run's in bench/out/seedwhole.json and bench/out/seedwhole.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"

orig_args="$*"
wait_load=1 skip_loader=0 threads=$(nproc) pairs=7
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-wait) wait_load=0 ;;
    --quick) args+=(-quick) ;;
    --only) args+=(-only "$2"); shift ;;
    --skip-loader) skip_loader=1 ;;
    --threads) threads=$2; shift ;;
    --pairs) pairs=$2; shift ;;
    --seed-runs) args+=(-seed-runs "$2"); shift ;;
    --cpuprofile) args+=(-cpuprofile "$2"); shift ;;
    --py-first) args+=(-py-first) ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

mkdir -p bench/bin bench/out
go build -o bench/bin/gowork ./bench/cmd/gowork
go build -o bench/bin/runbench ./bench/cmd/runbench
go build -o bench/bin/loader ./bench/loader
go build -o bench/bin/finetune ./cmd/finetune

exec > >(tee bench/out/run.log) 2>&1

if [ "$wait_load" = 1 ]; then
  for i in $(seq 0 40); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" 'BEGIN { exit !(l < 1.0) }'; then
      echo "load average $load: starting"
      break
    fi
    if [ "$i" = 40 ]; then
      echo "load average still $load after 20 minutes: running anyway"
      break
    fi
    echo "load average $load, waiting for < 1.0 ($((i * 30)) s so far)"
    sleep 30
  done
fi

export OMP_NUM_THREADS=$threads
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB"
echo "go: $(go version)"
echo "python: $(/usr/bin/python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)')"
echo "threads: $threads (OMP_NUM_THREADS, torch.SetNumThreads, torch.set_num_threads)"
echo "command: bench/run.sh $orig_args"
echo "load average: $(cat /proc/loadavg)"

bench/bin/runbench -threads "$threads" -pairs "$pairs" -json bench/out/results.json -md bench/out/results.md \
  -seed-json bench/out/seed.json -seed-md bench/out/seed.md \
  -seedwhole-json bench/out/seedwhole.json -seedwhole-md bench/out/seedwhole.md "${args[@]}"

if [ "$skip_loader" = 0 ]; then
  echo
  echo "== loader: vision/data's BatchLoader against torchvision's DataLoader (bench/loader) =="
  bench/bin/loader -workers "$threads" -rounds 3
fi
echo "load average at the end: $(cat /proc/loadavg)"
