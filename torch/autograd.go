package torch

// #include "shim.h"
import "C"

import "runtime"

// SetRequiresGrad switches gradient recording for t, a leaf tensor.
func (t *Tensor) SetRequiresGrad(on bool) error {
	h, err := t.handle()
	if err != nil {
		return err
	}
	v := C.int32_t(0)
	if on {
		v = 1
	}
	err = opError("requires_grad_", C.ft_tensor_set_requires_grad(h, v))
	runtime.KeepAlive(t)
	return err
}

// RequiresGrad reports whether autograd records operations on t.
func (t *Tensor) RequiresGrad() bool {
	i, err := t.info()
	return err == nil && i.requiresGrad
}

// IsLeaf reports whether t was created by the user rather than by an
// operation that autograd recorded.
func (t *Tensor) IsLeaf() bool {
	h, err := t.handle()
	if err != nil {
		return false
	}
	var out C.int32_t
	err = takeError(C.ft_tensor_is_leaf(h, &out))
	runtime.KeepAlive(t)
	return err == nil && out != 0
}

// Backward computes the gradient of t, a scalar, with respect to every leaf
// that requires grad, accumulating into their Grad.
func (t *Tensor) Backward() error { return t.BackwardWith(nil, false) }

// BackwardWith is Backward with an explicit output gradient (nil for a
// scalar t) and the option to keep the graph for a second backward.
func (t *Tensor) BackwardWith(grad *Tensor, retainGraph bool) error {
	h, err := t.handle()
	if err != nil {
		return err
	}
	var gh C.ft_tensor
	if grad != nil {
		if gh, err = grad.handle(); err != nil {
			return err
		}
	}
	r := C.int32_t(0)
	if retainGraph {
		r = 1
	}
	err = opError("backward", C.ft_tensor_backward(h, gh, r))
	runtime.KeepAlive(t)
	runtime.KeepAlive(grad)
	return err
}

// Grad returns the accumulated gradient of t, or nil when none has been
// computed. The result shares storage with the gradient.
func (t *Tensor) Grad() (*Tensor, error) {
	h, err := t.handle()
	if err != nil {
		return nil, err
	}
	var out C.ft_tensor
	err = opError("grad", C.ft_tensor_grad(h, &out))
	runtime.KeepAlive(t)
	if err != nil || out == nil {
		return nil, err
	}
	return newTensor(out), nil
}

// SetGrad replaces t's gradient; nil clears it.
func (t *Tensor) SetGrad(g *Tensor) error {
	h, err := t.handle()
	if err != nil {
		return err
	}
	var gh C.ft_tensor
	if g != nil {
		if gh, err = g.handle(); err != nil {
			return err
		}
	}
	err = opError("set grad", C.ft_tensor_set_grad(h, gh))
	runtime.KeepAlive(t)
	runtime.KeepAlive(g)
	return err
}

// ZeroGrad sets t's gradient to zeros in place, if it has one.
func (t *Tensor) ZeroGrad() error {
	g, err := t.Grad()
	if err != nil || g == nil {
		return err
	}
	defer g.Free()
	return g.Zero_()
}

// ClearGrad drops t's gradient, as optimizer.zero_grad(set_to_none=True).
func (t *Tensor) ClearGrad() error { return t.SetGrad(nil) }

// IsGradEnabled reports whether autograd records operations on the calling
// OS thread.
func IsGradEnabled() bool { return C.ft_grad_enabled() != 0 }

// NoGrad runs f with gradient recording off, as torch.no_grad(). Grad mode
// is per OS thread in libtorch, so the goroutine is pinned while f runs.
func NoGrad(f func() error) error { return withGradMode(false, f) }

// EnableGrad runs f with gradient recording on, as torch.enable_grad().
func EnableGrad(f func() error) error { return withGradMode(true, f) }

func withGradMode(on bool, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := C.ft_grad_enabled()
	v := C.int32_t(0)
	if on {
		v = 1
	}
	C.ft_set_grad_enabled(v)
	defer C.ft_set_grad_enabled(prev)
	return f()
}

// IsContiguous reports whether t is laid out contiguously in format f.
func (t *Tensor) IsContiguous(f MemoryFormat) (bool, error) {
	h, err := t.handle()
	if err != nil {
		return false, err
	}
	var out C.int32_t
	err = takeError(C.ft_tensor_is_contiguous(h, C.int32_t(f), &out))
	runtime.KeepAlive(t)
	return out != 0, err
}
