//go:build !libtorch_env && !shim_shared

package distributed

// The default build uses Debian's libtorch-dev, as package torch does, and
// Gloo's headers from libgloo-dev (c10d's ProcessGroupGloo.hpp includes
// them).

// #cgo CXXFLAGS: -std=c++17 -O2 -I/usr/include/torch/csrc/api/include -Wno-unused-parameter -Wno-deprecated-declarations
// #cgo LDFLAGS: -ltorch -ltorch_cpu -lc10 -lstdc++
import "C"
