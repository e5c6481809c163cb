package tensorfile

import (
	"fmt"
	"math"
)

// DType names an element type, spelled as in the safetensors specification.
type DType string

// The element types this package reads and writes.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size returns the number of bytes of one element of type d, or 0 if d is
// not one of the types above.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// Tensor is one named entry of a tensor file: its elements in row-major
// order, stored contiguously and little-endian in Data.
//
// Shape is empty, not nil, for a scalar. Data always holds exactly
// prod(Shape) * DType.Size() bytes. Tensors returned by the readers may share
// memory with each other (as tensors viewing one PyTorch storage do), so copy
// Data before modifying it.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []byte
}

// byteSize returns the number of bytes of a tensor of the given shape and
// element type, checking that every dimension is non-negative and that the
// size fits in an int64.
func byteSize(shape []int64, dtype DType) (int64, error) {
	elem := int64(dtype.Size())
	if elem == 0 {
		return 0, fmt.Errorf("unsupported dtype %q", dtype)
	}
	n := elem
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}
