package optim

// #cgo LDFLAGS: -lm
// #include <math.h>
import "C"

// pow returns x to the power y from the C library, as Python's float power
// does, so Adam's bias corrections equal PyTorch's to the last bit; Go's
// math.Pow differs in the last place for most integer exponents.
func pow(x, y float64) float64 { return float64(C.pow(C.double(x), C.double(y))) }
