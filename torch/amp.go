package torch

// #include "shim.h"
import "C"

import (
	"fmt"
	"runtime"
)

// Autocast runs f with automatic mixed precision on device type dev, as
// PyTorch's torch.autocast(device_type, dtype): inside f, operators that
// autocast lists (convolutions, matrix products, linear layers) run in
// dtype, Float16 or BFloat16, while those that need the range (losses,
// softmax, reductions) run in float32. Autocast regions nest; the cast
// cache is cleared when the outermost one ends.
//
// The backward pass runs outside Autocast, as in PyTorch: it follows the
// dtypes the forward pass recorded. Autocast is per OS thread in libtorch,
// so the goroutine is pinned while f runs. CPU autocast supports BFloat16;
// CUDA supports both types.
func Autocast(dev DeviceType, dtype DType, f func() error) (err error) {
	if dtype != BFloat16 && dtype != Float16 {
		return fmt.Errorf("torch: autocast to %v: want bfloat16 or float16", dtype)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var (
		prevEnabled, prevCache C.int32_t
		prevDType              C.int8_t
	)
	if enterErr := opError("autocast", C.ft_autocast_enter(C.int32_t(dev), C.int8_t(dtype), &prevEnabled, &prevDType, &prevCache)); enterErr != nil {
		return enterErr
	}
	defer func() {
		if exitErr := opError("autocast", C.ft_autocast_exit(C.int32_t(dev), prevEnabled, prevDType, prevCache)); err == nil {
			err = exitErr
		}
	}()
	return f()
}

// AutocastEnabled reports whether autocast is on for device type dev on the
// calling OS thread.
func AutocastEnabled(dev DeviceType) bool {
	var out C.int32_t
	return takeError(C.ft_autocast_enabled(C.int32_t(dev), &out)) == nil && out != 0
}
