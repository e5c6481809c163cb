//go:build shim_shared

package distributed

import (
	"errors"
	"time"

	"github.com/finetune-go/finetune/torch"
)

// With the shim_shared build tag the binary does not link libtorch itself,
// and c10d.cpp, which calls it directly, is left out: Init fails with
// errShared.
var errShared = errors.New("not available in a shim_shared build (c10d is not in the shared shim); build without the shim_shared tag")

type group struct{}

// NCCLBuilt reports whether the NCCL backend is compiled in: never in a
// shim_shared build.
func NCCLBuilt() bool { return false }

// Backends returns the process-group backends compiled in: none in a
// shim_shared build.
func Backends() []string { return nil }

func newGroup(backend, addr string, port, rank, size int, timeout time.Duration, ifnames string, loopback bool) (*group, error) {
	return nil, errShared
}

func (g *group) free() {}

func (g *group) allReduce(ts []*torch.Tensor, op ReduceOp, timeout time.Duration) error {
	return errShared
}

func (g *group) broadcast(ts []*torch.Tensor, root int, timeout time.Duration) error {
	return errShared
}

func (g *group) allGather(t *torch.Tensor, size int, timeout time.Duration) ([]*torch.Tensor, error) {
	return nil, errShared
}

func (g *group) barrier(timeout time.Duration) error { return errShared }
