//go:build !libtorch_env && !shim_shared

package torch

// The default build uses Debian's libtorch-dev (headers in /usr/include,
// libraries on the linker's path). scripts/libtorch-env.sh selects another
// libtorch (third_party/libtorch or $LIBTORCH) by setting the build tag
// libtorch_env and the CGO_* flags, so no source is edited.

// #cgo CXXFLAGS: -std=c++17 -O2 -I/usr/include/torch/csrc/api/include -Wno-unused-parameter -Wno-deprecated-declarations
// #cgo LDFLAGS: -ltorch -ltorch_cpu -lc10 -lstdc++
import "C"
