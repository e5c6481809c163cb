package torch

// #include "shim.h"
import "C"

import (
	"fmt"
	"strconv"
	"strings"
)

// DeviceType is libtorch's device type code.
type DeviceType int8

// Device types.
const (
	DeviceCPU  DeviceType = 0
	DeviceCUDA DeviceType = 1
)

// Device names where a tensor lives. Index is -1 for "the current one".
type Device struct {
	Type  DeviceType
	Index int
}

// CPU is the host device.
var CPU = Device{Type: DeviceCPU, Index: -1}

// CUDA returns the n-th CUDA device.
func CUDA(n int) Device { return Device{Type: DeviceCUDA, Index: n} }

// String formats d as PyTorch does: "cpu", "cuda", "cuda:1".
func (d Device) String() string {
	name := "cpu"
	if d.Type == DeviceCUDA {
		name = "cuda"
	} else if d.Type != DeviceCPU {
		name = fmt.Sprintf("device(%d)", d.Type)
	}
	if d.Index >= 0 && d.Type != DeviceCPU {
		return name + ":" + strconv.Itoa(d.Index)
	}
	return name
}

// ParseDevice parses "cpu", "cuda" or "cuda:N".
func ParseDevice(s string) (Device, error) {
	switch {
	case s == "cpu":
		return CPU, nil
	case s == "cuda":
		return CUDA(0), nil
	case strings.HasPrefix(s, "cuda:"):
		n, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || n < 0 {
			return Device{}, fmt.Errorf("torch: bad device %q: want cpu, cuda or cuda:N", s)
		}
		return CUDA(n), nil
	}
	return Device{}, fmt.Errorf("torch: bad device %q: want cpu, cuda or cuda:N", s)
}

// CUDAIsAvailable reports whether this libtorch was built with CUDA and a
// GPU is visible.
func CUDAIsAvailable() bool { return C.ft_cuda_is_available() != 0 }

// CUDADeviceCount returns the number of visible CUDA devices.
func CUDADeviceCount() int { return int(C.ft_cuda_device_count()) }

// SetNumThreads sets libtorch's intra-op thread count.
func SetNumThreads(n int) { C.ft_set_num_threads(C.int32_t(n)) }

// NumThreads returns libtorch's intra-op thread count.
func NumThreads() int { return int(C.ft_get_num_threads()) }

// Version describes the libtorch the binary runs on, for example
// "1.13.0 cpu" or "2.5.1 cuda cudnn 90100".
func Version() string {
	var out *C.char
	if msg := C.ft_version(&out); msg != nil {
		return "unknown: " + takeError(msg).Error()
	}
	return takeString(out)
}
