package torch

// #include "shim.h"
import "C"

import "unsafe"

// UnsafeHandle returns the at::Tensor* behind t, for companion C++ code
// (package torch/distributed, say) that calls libtorch directly. The
// pointer is valid while t is live: not after Free, nor after its scope
// closes, nor once t is unreachable (use runtime.KeepAlive). It is nil for
// a nil or freed tensor.
func (t *Tensor) UnsafeHandle() unsafe.Pointer {
	if t == nil {
		return nil
	}
	return unsafe.Pointer(t.h)
}

// FromHandle adopts p, an at::Tensor* that companion C++ code allocated
// with new at::Tensor(...), as a Tensor: it joins the current scope like
// any new tensor, and is deleted with it, by Free or by the garbage
// collector. p must not be used by the caller afterwards.
func FromHandle(p unsafe.Pointer) *Tensor { return newTensor(C.ft_tensor(p)) }
