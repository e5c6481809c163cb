#!/usr/bin/env bash
# setup.sh installs everything finetune needs on a fresh Debian (bookworm)
# machine: libtorch, the reference PyTorch used by the parity tests, the
# demo's data set and the Go modules. It is idempotent: a second run
# installs nothing and takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ pkg-config git ca-certificates
  libtorch-dev              # libtorch 1.13, CPU: what the bindings link by default
  libgloo-dev               # Gloo's headers, for torch/distributed (c10d's ProcessGroupGloo)
  libtcmalloc-minimal4      # tcmalloc: torch links it so that freed activations serve the next step
  python3-torch             # the same libtorch from Python: reference for parity tests
  python3-torchvision
  python3-pil
  python3-sklearn           # reference logistic regression for the linear probe's parity test
  libjpeg62-turbo-dev       # libjpeg-turbo: vision/data decodes JPEGs with it
  dataset-fashion-mnist     # the built-in demo's data
  chromium                  # headless browser: the test that renders report.html
)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v go >/dev/null 2>&1; then
  [ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  echo "setup: Go is not installed; install Go $(sed -n 's/^go //p' go.mod) or later from https://go.dev/dl" >&2
  exit 1
fi
go mod download
echo "setup: done ($(go version | cut -d' ' -f3), libtorch $(dpkg-query -W -f='${Version}' libtorch-dev))"
