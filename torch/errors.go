package torch

// #include <stdlib.h>
import "C"

import (
	"errors"
	"unsafe"
)

// Error is an error raised inside libtorch. Msg is libtorch's own message.
type Error struct {
	Op  string
	Msg string
}

func (e *Error) Error() string {
	if e.Op == "" {
		return "torch: " + e.Msg
	}
	return "torch: " + e.Op + ": " + e.Msg
}

// ErrFreed is returned when a tensor is used after Free or after the scope
// that owned it closed.
var ErrFreed = errors.New("torch: tensor used after it was freed (its scope closed or Free was called)")

// ErrNilTensor is returned when a nil *Tensor is passed where one is required.
var ErrNilTensor = errors.New("torch: nil tensor")

// takeError converts a malloc'd message from the shim into an *Error and
// frees it.
func takeError(msg *C.char) error {
	if msg == nil {
		return nil
	}
	return &Error{Msg: takeString(msg)}
}

func takeString(s *C.char) string {
	out := C.GoString(s)
	C.free(unsafe.Pointer(s))
	return out
}

func opError(op string, msg *C.char) error {
	if msg == nil {
		return nil
	}
	return &Error{Op: op, Msg: takeString(msg)}
}
