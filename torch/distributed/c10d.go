//go:build !shim_shared

package distributed

// #include <stdlib.h>
// #include "c10d.h"
import "C"

import (
	"errors"
	"runtime"
	"time"
	"unsafe"

	"github.com/finetune-go/finetune/torch"
)

// group is a c10d process group: a TCPStore and a Gloo or NCCL backend.
type group struct{ h C.ftd_group }

// NCCLBuilt reports whether the NCCL backend is compiled in.
func NCCLBuilt() bool { return C.ftd_nccl_built() != 0 }

// Backends returns the process-group backends compiled in: gloo, and
// nccl when NCCLBuilt.
func Backends() []string {
	if NCCLBuilt() {
		return []string{"gloo", "nccl"}
	}
	return []string{"gloo"}
}

func newGroup(backend, addr string, port, rank, size int, timeout time.Duration, ifnames string, loopback bool) (*group, error) {
	cb, ca, ci := C.CString(backend), C.CString(addr), C.CString(ifnames)
	defer C.free(unsafe.Pointer(cb))
	defer C.free(unsafe.Pointer(ca))
	defer C.free(unsafe.Pointer(ci))
	lb := C.int32_t(0)
	if loopback {
		lb = 1
	}
	var h C.ftd_group
	msg := C.ftd_group_new(cb, ca, C.int32_t(port), C.int32_t(rank), C.int32_t(size), millis(timeout), ci, lb, &h)
	if err := takeError(msg); err != nil {
		return nil, err
	}
	return &group{h: h}, nil
}

func (g *group) free() { C.ftd_group_free(g.h) }

func (g *group) allReduce(ts []*torch.Tensor, op ReduceOp, timeout time.Duration) error {
	hs, err := handles(ts)
	if err != nil || len(hs) == 0 {
		return err
	}
	msg := C.ftd_allreduce(g.h, &hs[0], C.int32_t(len(hs)), C.int32_t(op), millis(timeout))
	runtime.KeepAlive(ts)
	return takeError(msg)
}

func (g *group) broadcast(ts []*torch.Tensor, root int, timeout time.Duration) error {
	hs, err := handles(ts)
	if err != nil || len(hs) == 0 {
		return err
	}
	msg := C.ftd_broadcast(g.h, &hs[0], C.int32_t(len(hs)), C.int32_t(root), millis(timeout))
	runtime.KeepAlive(ts)
	return takeError(msg)
}

func (g *group) allGather(t *torch.Tensor, size int, timeout time.Duration) ([]*torch.Tensor, error) {
	hs, err := handles([]*torch.Tensor{t})
	if err != nil {
		return nil, err
	}
	out := make([]unsafe.Pointer, size)
	msg := C.ftd_allgather(g.h, hs[0], &out[0], millis(timeout))
	runtime.KeepAlive(t)
	if err := takeError(msg); err != nil {
		return nil, err
	}
	ts := make([]*torch.Tensor, size)
	for i, p := range out {
		ts[i] = torch.FromHandle(p)
	}
	return ts, nil
}

func (g *group) barrier(timeout time.Duration) error {
	return takeError(C.ftd_barrier(g.h, millis(timeout)))
}

// handles returns the at::Tensor* of each tensor.
func handles(ts []*torch.Tensor) ([]unsafe.Pointer, error) {
	hs := make([]unsafe.Pointer, len(ts))
	for i, t := range ts {
		switch {
		case t == nil:
			return nil, torch.ErrNilTensor
		case !t.Defined():
			return nil, torch.ErrFreed
		}
		hs[i] = t.UnsafeHandle()
	}
	return hs, nil
}

func millis(d time.Duration) C.int64_t { return C.int64_t(d.Milliseconds()) }

// takeError turns a malloc'd message from c10d.cpp into an error and
// frees it.
func takeError(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}
