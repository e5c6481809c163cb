package torch

import "fmt"

var (
	opPinMemory = newOp("aten::pin_memory", "")
	opIsPinned  = newOp("aten::is_pinned", "")
	opSetData   = newOp("aten::set_data", "")
)

// PinMemory returns a copy of t, a CPU tensor, in page-locked host memory,
// or t itself when it is pinned already. Copies from pinned memory to a
// GPU can run asynchronously (ToNonBlocking). It needs CUDA.
func (t *Tensor) PinMemory() (*Tensor, error) {
	if !CUDAIsAvailable() {
		return nil, fmt.Errorf("torch: pin memory: CUDA is not available (libtorch %s)", Version())
	}
	return opPinMemory.tensor(newArgs().T(t))
}

// IsPinned reports whether t lives in page-locked host memory.
func (t *Tensor) IsPinned() (bool, error) {
	res, err := opIsPinned.call(newArgs().T(t), false)
	if err != nil {
		return false, err
	}
	return len(res) == 1 && res[0].tag == outBool && res[0].i != 0, nil
}

// ToNonBlocking is To with non_blocking=True: a copy from pinned host memory
// to a GPU, or from a GPU to the host, is queued on the current CUDA stream
// and To returns before it completes. Operations on the result queued on
// the same stream see the data; the host must synchronize before reading a
// device-to-host copy.
func (t *Tensor) ToNonBlocking(d Device, dt DType) (*Tensor, error) {
	return opToDevice.tensor(newArgs().T(t).Device(d).DType(dt).Bool(true))
}

// SetData makes t use src's data, device, dtype and layout while keeping
// its identity, as PyTorch's t.data = src: a parameter moved this way stays
// the same *Tensor for the modules and optimizers that hold it, and keeps
// requires_grad.
func (t *Tensor) SetData(src *Tensor) error { return opSetData.inplace(newArgs().T(t).T(src)) }
