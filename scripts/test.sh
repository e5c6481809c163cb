#!/usr/bin/env bash
# test.sh is the project's whole check: formatting, vet and every test
# against the real libtorch. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -count=1 -timeout 30m ./...

# Each fuzz target of issue 17 runs briefly beyond its seed corpus (go
# test above ran the corpus itself): a few seconds of new inputs per
# target catch a regression in the parsers of files that come from
# users. Long runs are done by hand (go test -fuzz ... -fuzztime 10m).
# FUZZTIME=0 skips this step.
fuzztime=${FUZZTIME:-10s}
if [ "$fuzztime" != 0 ]; then
  for target in ./torch/tensorfile:FuzzReadSafetensors ./torch/tensorfile:FuzzReadPTH \
    ./vision/data:FuzzDecodeTurbo ./finetune:FuzzDecodeMeta; do
    go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$fuzztime" -fuzzminimizetime 3s "${target%%:*}"
  done
fi
