package torch

import "fmt"

// DType is a tensor element type. The values are libtorch's ScalarType
// codes, so they cross the C boundary unchanged.
type DType int8

// The element types finetune uses.
const (
	Uint8    DType = 0
	Int8     DType = 1
	Int16    DType = 2
	Int32    DType = 3
	Int64    DType = 4
	Float16  DType = 5
	Float32  DType = 6
	Float64  DType = 7
	Bool     DType = 11
	BFloat16 DType = 15
)

var dtypeNames = map[DType]string{
	Uint8: "uint8", Int8: "int8", Int16: "int16", Int32: "int32", Int64: "int64",
	Float16: "float16", Float32: "float32", Float64: "float64", Bool: "bool",
	BFloat16: "bfloat16",
}

var dtypeSizes = map[DType]int{
	Uint8: 1, Int8: 1, Int16: 2, Int32: 4, Int64: 8, Float16: 2, Float32: 4,
	Float64: 8, Bool: 1, BFloat16: 2,
}

// String returns PyTorch's name for d without the "torch." prefix.
func (d DType) String() string {
	if n, ok := dtypeNames[d]; ok {
		return n
	}
	return fmt.Sprintf("dtype(%d)", int8(d))
}

// Size returns the number of bytes of one element, or 0 for an unknown type.
func (d DType) Size() int { return dtypeSizes[d] }

// IsFloating reports whether d is a floating-point type.
func (d DType) IsFloating() bool {
	return d == Float16 || d == Float32 || d == Float64 || d == BFloat16
}

// ParseDType returns the DType named s ("float32", "bf16", "torch.int64"...).
func ParseDType(s string) (DType, error) {
	switch s {
	case "half", "fp16":
		return Float16, nil
	case "float", "fp32":
		return Float32, nil
	case "double", "fp64":
		return Float64, nil
	case "bf16":
		return BFloat16, nil
	case "long":
		return Int64, nil
	case "int":
		return Int32, nil
	}
	for d, n := range dtypeNames {
		if n == s || "torch."+n == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("torch: unknown dtype %q", s)
}

// Element is the set of Go types that map one to one onto a DType.
type Element interface {
	float32 | float64 | int64 | int32 | int16 | int8 | uint8 | bool
}

func dtypeOf[T Element]() DType {
	var z T
	switch any(z).(type) {
	case float32:
		return Float32
	case float64:
		return Float64
	case int64:
		return Int64
	case int32:
		return Int32
	case int16:
		return Int16
	case int8:
		return Int8
	case uint8:
		return Uint8
	case bool:
		return Bool
	}
	panic("unreachable")
}
