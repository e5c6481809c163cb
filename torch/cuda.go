package torch

// #include "shim.h"
import "C"

import (
	"fmt"
	"strings"
)

// Build describes the libtorch the process runs on.
type Build struct {
	// Version is libtorch's version, "1.13.0" or "2.5.1".
	Version string
	// CUDA reports whether libtorch's CUDA library is loaded: false for a
	// CPU build, and for a CUDA build linked without -Wl,--no-as-needed.
	CUDA bool
	// CUDAVersion is the CUDA runtime libtorch was built with, "12.4";
	// empty without CUDA.
	CUDAVersion string
	// CuDNNVersion is the cuDNN libtorch was built with, "9.1.0"; empty
	// without cuDNN.
	CuDNNVersion string
	// CUDAAvailable reports whether a GPU is visible to libtorch.
	CUDAAvailable bool
	// DeviceCount is the number of visible CUDA devices.
	DeviceCount int
}

// BuildInfo describes the libtorch in use, for a start-up report.
func BuildInfo() (Build, error) {
	var (
		version                 *C.char
		built, available, count C.int32_t
		cudaVer, cudnnVer       C.int64_t
	)
	if err := opError("build info", C.ft_build_info(&version, &built, &cudaVer, &cudnnVer, &available, &count)); err != nil {
		return Build{}, err
	}
	b := Build{
		Version:       takeString(version),
		CUDA:          built != 0,
		CUDAAvailable: available != 0,
		DeviceCount:   int(count),
	}
	if v := int(cudaVer); v > 0 {
		b.CUDAVersion = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	if v := int(cudnnVer); v >= 90000 {
		b.CuDNNVersion = fmt.Sprintf("%d.%d.%d", v/10000, v%10000/100, v%100)
	} else if v > 0 {
		b.CuDNNVersion = fmt.Sprintf("%d.%d.%d", v/1000, v%1000/100, v%100)
	}
	return b, nil
}

// String formats b for a version report: "libtorch 1.13.0 (cpu)" or
// "libtorch 2.5.1 (CUDA 12.4, cuDNN 9.1.0, 1 GPU)".
func (b Build) String() string {
	if !b.CUDA {
		return "libtorch " + b.Version + " (cpu)"
	}
	parts := []string{"CUDA " + b.CUDAVersion}
	if b.CuDNNVersion != "" {
		parts = append(parts, "cuDNN "+b.CuDNNVersion)
	}
	switch {
	case !b.CUDAAvailable:
		parts = append(parts, "no GPU visible")
	case b.DeviceCount == 1:
		parts = append(parts, "1 GPU")
	default:
		parts = append(parts, fmt.Sprintf("%d GPUs", b.DeviceCount))
	}
	return "libtorch " + b.Version + " (" + strings.Join(parts, ", ") + ")"
}

// SetCuDNNBenchmark switches cuDNN's benchmark mode, as
// torch.backends.cudnn.benchmark: with it on, the first convolution of each
// shape tries cuDNN's algorithms and later ones use the fastest. It is a
// process-wide setting and has no effect without CUDA.
func SetCuDNNBenchmark(on bool) {
	v := C.int32_t(0)
	if on {
		v = 1
	}
	C.ft_set_cudnn_benchmark(v)
}

// CuDNNBenchmark reports whether cuDNN's benchmark mode is on.
func CuDNNBenchmark() bool { return C.ft_cudnn_benchmark() != 0 }

// CUDASynchronize waits for every kernel queued on CUDA device index (-1
// for the current device) to finish, as torch.cuda.synchronize.
func CUDASynchronize(index int) error {
	return opError("cuda synchronize", C.ft_cuda_synchronize(C.int64_t(index)))
}
