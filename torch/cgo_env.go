//go:build libtorch_env && !shim_shared

package torch

// With the libtorch_env build tag every compiler and linker flag comes from
// CGO_CXXFLAGS and CGO_LDFLAGS, as set by scripts/libtorch-env.sh for the
// libtorch it finds, the C++ standard included (libtorch 2.13 and later
// need C++20).

// #cgo CXXFLAGS: -O2 -Wno-unused-parameter -Wno-deprecated-declarations
// #cgo LDFLAGS: -lstdc++
import "C"
