package torch

import "fmt"

// SelectDevice resolves a device setting against the libtorch and GPUs at
// hand. spec is "auto" (or empty), "cpu", "cuda" or "cuda:N": auto means
// the first CUDA device when CUDA is available and the CPU otherwise, while
// an explicit CUDA device that is not there is an error naming the spec and
// what is available. The message says which device was chosen and why, for
// the log:
//
//	CUDA not available (libtorch 1.13.0 cpu): using cpu
func SelectDevice(spec string) (Device, string, error) {
	b, err := BuildInfo()
	if err != nil {
		return Device{}, "", fmt.Errorf("torch: device %q: %w", spec, err)
	}
	if spec == "" || spec == "auto" {
		switch {
		case b.CUDAAvailable && b.DeviceCount > 0:
			return CUDA(0), "using cuda:0: " + b.String(), nil
		case b.CUDA:
			return CPU, fmt.Sprintf("CUDA not available (libtorch %s, CUDA %s, no GPU visible): using cpu", b.Version, b.CUDAVersion), nil
		default:
			return CPU, fmt.Sprintf("CUDA not available (libtorch %s cpu): using cpu", b.Version), nil
		}
	}
	d, err := ParseDevice(spec)
	if err != nil {
		return Device{}, "", fmt.Errorf("torch: bad device %q: want auto, cpu, cuda or cuda:N", spec)
	}
	if d.Type == DeviceCPU {
		return d, "using cpu", nil
	}
	switch {
	case !b.CUDA:
		return Device{}, "", fmt.Errorf("torch: device %q: libtorch %s was built without CUDA (or linked without libtorch_cuda); use auto or cpu", spec, b.Version)
	case !b.CUDAAvailable || b.DeviceCount == 0:
		return Device{}, "", fmt.Errorf("torch: device %q: libtorch %s has CUDA %s but no GPU is visible; use auto or cpu", spec, b.Version, b.CUDAVersion)
	case d.Index >= b.DeviceCount:
		return Device{}, "", fmt.Errorf("torch: device %q: only %d CUDA device(s) visible, cuda:0 to cuda:%d", spec, b.DeviceCount, b.DeviceCount-1)
	}
	return d, "using " + d.String() + ": " + b.String(), nil
}
