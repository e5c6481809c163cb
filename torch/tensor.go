package torch

// #include "shim.h"
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Tensor is a handle to a libtorch tensor.
//
// A tensor made while a Scope is open on the calling goroutine belongs to
// that scope and is freed when it closes; Keep or MoveTo takes it out.
// Any other tensor is freed by Free or, as a safety net, when the garbage
// collector finds it unreachable.
type Tensor struct {
	h          C.ft_tensor
	scope      *Scope
	scopeIndex int
	cleanup    runtime.Cleanup
	collected  bool
}

func freeHandle(h C.ft_tensor) { C.ft_tensor_free(h) }

// newTensor wraps a fresh handle and gives it to the current scope or to
// the garbage collector.
func newTensor(h C.ft_tensor) *Tensor {
	t := &Tensor{h: h}
	if s := currentScope(); s != nil {
		s.adopt(t)
	} else {
		t.collect()
	}
	return t
}

func (t *Tensor) collect() {
	t.cleanup = runtime.AddCleanup(t, freeHandle, t.h)
	t.collected = true
}

// Free releases the native tensor now. It is safe to call more than once
// and on a tensor its scope already freed.
func (t *Tensor) Free() {
	if t == nil || t.h == nil {
		return
	}
	if t.scope != nil {
		t.scope.disown(t)
	}
	t.free()
}

func (t *Tensor) free() {
	if t.collected {
		t.cleanup.Stop()
		t.collected = false
	}
	C.ft_tensor_free(t.h)
	t.h = nil
}

// Keep takes t out of its scope, so it outlives the scope's Close; it is
// then freed by Free or by the garbage collector. Keep returns t.
func (t *Tensor) Keep() *Tensor {
	if t == nil || t.h == nil || t.scope == nil {
		return t
	}
	t.scope.disown(t)
	t.collect()
	return t
}

// MoveTo hands t to scope s (an enclosing scope, typically), so it lives
// until s closes. MoveTo returns t.
func (t *Tensor) MoveTo(s *Scope) *Tensor {
	if t == nil || t.h == nil || s == nil || s.closed {
		return t
	}
	if t.scope != nil {
		t.scope.disown(t)
	}
	if t.collected {
		t.cleanup.Stop()
		t.collected = false
	}
	s.adopt(t)
	return t
}

// Defined reports whether t holds a live native tensor.
func (t *Tensor) Defined() bool { return t != nil && t.h != nil }

func (t *Tensor) handle() (C.ft_tensor, error) {
	if t == nil {
		return nil, ErrNilTensor
	}
	if t.h == nil {
		return nil, ErrFreed
	}
	return t.h, nil
}

type tensorInfo struct {
	dtype        DType
	shape        []int64
	device       Device
	requiresGrad bool
}

const maxDims = 16

func (t *Tensor) info() (tensorInfo, error) {
	h, err := t.handle()
	if err != nil {
		return tensorInfo{}, err
	}
	var (
		dtype                       C.int8_t
		ndim, devType, devIndex, rg C.int32_t
		defined                     C.int32_t
		shape                       [maxDims]C.int64_t
	)
	msg := C.ft_tensor_info(h, &dtype, &ndim, &shape[0], maxDims, &devType, &devIndex, &rg, &defined)
	runtime.KeepAlive(t)
	if err := takeError(msg); err != nil {
		return tensorInfo{}, err
	}
	if defined == 0 {
		return tensorInfo{}, fmt.Errorf("torch: undefined tensor")
	}
	if int(ndim) > maxDims {
		return tensorInfo{}, fmt.Errorf("torch: tensor has %d dimensions, at most %d supported", ndim, maxDims)
	}
	s := make([]int64, int(ndim))
	for i := range s {
		s[i] = int64(shape[i])
	}
	return tensorInfo{
		dtype:        DType(dtype),
		shape:        s,
		device:       Device{Type: DeviceType(devType), Index: int(devIndex)},
		requiresGrad: rg != 0,
	}, nil
}

// Shape returns the sizes of t's dimensions; nil for a freed tensor.
func (t *Tensor) Shape() []int64 {
	i, err := t.info()
	if err != nil {
		return nil
	}
	return i.shape
}

// Dim returns the number of dimensions of t.
func (t *Tensor) Dim() int { return len(t.Shape()) }

// Size returns the size of dimension d; negative d counts from the end.
func (t *Tensor) Size(d int) (int64, error) {
	s := t.Shape()
	if d < 0 {
		d += len(s)
	}
	if d < 0 || d >= len(s) {
		return 0, fmt.Errorf("torch: dimension %d out of range for a %d-d tensor", d, len(s))
	}
	return s[d], nil
}

// Numel returns the number of elements of t.
func (t *Tensor) Numel() int64 { return numel(t.Shape()) }

func numel(shape []int64) int64 {
	n := int64(1)
	for _, s := range shape {
		n *= s
	}
	return n
}

// DType returns t's element type.
func (t *Tensor) DType() DType {
	i, _ := t.info()
	return i.dtype
}

// Device returns where t lives.
func (t *Tensor) Device() Device {
	i, _ := t.info()
	return i.device
}

// FromSlice makes a CPU tensor with a copy of data and the given shape
// (a 1-d tensor of len(data) when shape is empty).
func FromSlice[T Element](data []T, shape ...int64) (*Tensor, error) {
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	var z T
	if len(shape) == 0 {
		shape = []int64{int64(len(data))}
	}
	return fromData(p, int64(len(data))*int64(unsafe.Sizeof(z)), dtypeOf[T](), shape)
}

// FromBytes makes a CPU tensor of the given type and shape from the raw,
// contiguous, little-endian bytes in data. The shape is taken literally:
// no sizes make a 0-d tensor.
func FromBytes(data []byte, dtype DType, shape ...int64) (*Tensor, error) {
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("torch: FromBytes: unsupported dtype %v", dtype)
	}
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	if shape == nil {
		shape = []int64{}
	}
	return fromData(p, int64(len(data)), dtype, shape)
}

func fromData(p unsafe.Pointer, nbytes int64, dtype DType, shape []int64) (*Tensor, error) {
	if len(shape) > maxDims {
		return nil, fmt.Errorf("torch: %d dimensions, at most %d supported", len(shape), maxDims)
	}
	var cshape [maxDims + 1]C.int64_t
	for i, s := range shape {
		cshape[i] = C.int64_t(s)
	}
	var h C.ft_tensor
	msg := C.ft_tensor_from_data(p, C.int64_t(nbytes), C.int8_t(dtype), &cshape[0], C.int32_t(len(shape)), &h)
	if err := opError("from data", msg); err != nil {
		return nil, err
	}
	return newTensor(h), nil
}

// Scalar makes a 0-d float32 tensor holding v.
func Scalar(v float64) (*Tensor, error) { return Full(nil, v) }

// Data copies t's elements, converted to T, into a new slice in row-major
// order.
func Data[T Element](t *Tensor) ([]T, error) {
	h, err := t.handle()
	if err != nil {
		return nil, err
	}
	out := make([]T, t.Numel())
	var z T
	var p unsafe.Pointer
	if len(out) > 0 {
		p = unsafe.Pointer(&out[0])
	}
	msg := C.ft_tensor_copy_to(h, p, C.int64_t(len(out)*int(unsafe.Sizeof(z))), C.int8_t(dtypeOf[T]()))
	runtime.KeepAlive(t)
	if err := opError("copy to Go", msg); err != nil {
		return nil, err
	}
	return out, nil
}

// Float32s returns t's elements as float32.
func (t *Tensor) Float32s() ([]float32, error) { return Data[float32](t) }

// Float64s returns t's elements as float64.
func (t *Tensor) Float64s() ([]float64, error) { return Data[float64](t) }

// Int64s returns t's elements as int64.
func (t *Tensor) Int64s() ([]int64, error) { return Data[int64](t) }

// Bytes returns t's elements as raw little-endian bytes of its own dtype.
func (t *Tensor) Bytes() ([]byte, error) {
	h, err := t.handle()
	if err != nil {
		return nil, err
	}
	info, err := t.info()
	if err != nil {
		return nil, err
	}
	out := make([]byte, numel(info.shape)*int64(info.dtype.Size()))
	var p unsafe.Pointer
	if len(out) > 0 {
		p = unsafe.Pointer(&out[0])
	}
	msg := C.ft_tensor_copy_to(h, p, C.int64_t(len(out)), C.int8_t(info.dtype))
	runtime.KeepAlive(t)
	if err := opError("copy to Go", msg); err != nil {
		return nil, err
	}
	return out, nil
}

// Item returns the value of a one-element tensor as float64.
func (t *Tensor) Item() (float64, error) {
	if n := t.Numel(); n != 1 {
		if !t.Defined() {
			return 0, ErrFreed
		}
		return 0, fmt.Errorf("torch: Item on a tensor of %d elements", n)
	}
	v, err := Data[float64](t)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// Alias returns a second handle to the same tensor (shared storage and
// autograd identity), owned by the current scope like any new tensor.
func (t *Tensor) Alias() (*Tensor, error) {
	h, err := t.handle()
	if err != nil {
		return nil, err
	}
	var out C.ft_tensor
	msg := C.ft_tensor_shallow_copy(h, &out)
	runtime.KeepAlive(t)
	if err := takeError(msg); err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

// Must returns v and panics if err is not nil. It is for tests, examples
// and code where an error is a programming mistake; the panic is its
// documented contract.
func Must[V any](v V, err error) V {
	if err != nil {
		panic(err)
	}
	return v
}
