//go:build libtorch_env && !shim_shared

package distributed

// With the libtorch_env build tag the flags come from CGO_CXXFLAGS and
// CGO_LDFLAGS, as for package torch (scripts/libtorch-env.sh). The NCCL
// backend is compiled in when CGO_CXXFLAGS defines USE_C10D_NCCL and
// reaches nccl.h and the CUDA headers.

// #cgo CXXFLAGS: -O2 -Wno-unused-parameter -Wno-deprecated-declarations
// #cgo LDFLAGS: -lstdc++
import "C"
