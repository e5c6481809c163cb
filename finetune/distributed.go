package finetune

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/distributed"
	"github.com/finetune-go/finetune/torch/nn"
)

// errPeerInterrupted is the cause of an interruption that another rank's
// signal started.
var errPeerInterrupted = errors.New("another rank was interrupted")

// dataParallel is a run's part in data-parallel training, as PyTorch's
// DistributedDataParallel: every rank trains a replica of the model on
// its share of each epoch, the gradients are averaged before each
// optimizer step, so the replicas stay identical, and rank 0 alone
// records the run. A nil *dataParallel is a process training alone: its methods
// then do what a single process needs, so the loop calls them
// unconditionally.
type dataParallel struct {
	pg      *distributed.ProcessGroup
	reducer *distributed.GradReducer
}

// The process group lives as long as the process: a process is one rank
// of one group, whatever runs it trains (the folds of cross-validation).
var sharedGroup struct {
	sync.Mutex
	pg *distributed.ProcessGroup
}

// PrimaryProcess reports whether this process records a run (its
// Recorder gets the events: checkpoints, metrics, reports) and reports
// its progress: a
// process training alone, or rank 0 of a data-parallel group (see
// distributed.FromEnv). The other ranks only compute.
func PrimaryProcess() bool {
	c, err := distributed.FromEnv()
	return err != nil || c.Rank == 0
}

// joinDataParallel joins the group that the environment describes (see
// distributed.FromEnv: finetune launch, torchrun, srun), or returns nil
// when the process runs alone. dev is the configured device: on CUDA
// each rank takes the GPU of its local rank, and the device to train on
// is returned. The backend is NCCL for CUDA when compiled in, else Gloo,
// unless FINETUNE_DIST_BACKEND says otherwise. say is told where the
// rank waits for the others, and for how long at most
// (FINETUNE_DIST_TIMEOUT), so that a rank waiting does not look hung.
func joinDataParallel(ctx context.Context, dev torch.Device, say func(format string, args ...any)) (*dataParallel, torch.Device, error) {
	c, err := distributed.FromEnv()
	if err != nil || c.WorldSize == 1 {
		return nil, dev, err
	}
	if dev.Type == torch.DeviceCUDA {
		if n := torch.CUDADeviceCount(); c.LocalRank >= n {
			return nil, dev, fmt.Errorf("distributed: local rank %d has no GPU: this host has %d", c.LocalRank, n)
		}
		dev = torch.CUDA(c.LocalRank)
	}
	if c.Backend == "" {
		c.Backend = "gloo"
		if dev.Type == torch.DeviceCUDA && distributed.NCCLBuilt() {
			c.Backend = "nccl"
		}
	}
	sharedGroup.Lock()
	defer sharedGroup.Unlock()
	if sharedGroup.pg == nil {
		say("waiting for %d ranks at %s (at most %v, FINETUNE_DIST_TIMEOUT)", c.WorldSize, c.Rendezvous(), cmp.Or(c.Timeout, distributed.DefaultTimeout))
		if sharedGroup.pg, err = distributed.Init(ctx, c); err != nil {
			return nil, dev, err
		}
	}
	return &dataParallel{pg: sharedGroup.pg, reducer: distributed.NewGradReducer(sharedGroup.pg, 0)}, dev, nil
}

// String describes the group for the run's log.
func (dp *dataParallel) String() string {
	if dp == nil {
		return "one process"
	}
	return fmt.Sprintf("rank %d of %d (%s)", dp.pg.Rank(), dp.pg.Size(), dp.pg.Backend())
}

// shard returns this rank's part of an epoch's order of the training
// samples (see distributed.Shard); alone, the whole order.
func (dp *dataParallel) shard(order []int) []int {
	if dp == nil {
		return order
	}
	return distributed.Shard(order, dp.pg.Rank(), dp.pg.Size())
}

// broadcastModel gives every rank rank 0's parameters and buffers.
func (dp *dataParallel) broadcastModel(m nn.Module) error {
	if dp == nil {
		return nil
	}
	return dp.pg.BroadcastModule(m, 0)
}

// syncBuffers gives every rank rank 0's buffers (BatchNorm's running
// statistics, which each rank updates from its own batches), as
// DistributedDataParallel's broadcast_buffers does; called before an
// evaluation, it makes every rank evaluate the same model.
func (dp *dataParallel) syncBuffers(m nn.Module) error {
	if dp == nil {
		return nil
	}
	return dp.pg.BroadcastBuffers(m, 0)
}

// reduceGradients averages the gradients of params over the ranks; it
// runs between backward and the optimizer's step (before gradient
// clipping and loss-scale unscaling, which then see the same gradients
// on every rank).
func (dp *dataParallel) reduceGradients(params []nn.Named[*torch.Tensor]) error {
	if dp == nil {
		return nil
	}
	ps := make([]*torch.Tensor, len(params))
	for i, p := range params {
		ps[i] = p.Value
	}
	return dp.reducer.Reduce(ps)
}

// stepTotals is a training step's metrics summed over the ranks.
type stepTotals struct {
	loss    float64 // the mean loss of the global batch
	correct int64
	n       int
	// stop is, in a group, the cause when some rank's context was
	// cancelled: every rank stops after this step.
	stop error
}

// totals sums one step's metrics over the ranks: loss is this rank's
// mean loss over its n samples. A rank whose loss is not finite makes
// the global one not finite, so that every rank stops at the same step.
func (dp *dataParallel) totals(ctx context.Context, loss float64, correct int64, n int) (stepTotals, error) {
	if dp == nil {
		return stepTotals{loss: loss, correct: correct, n: n}, nil
	}
	s, err := distributed.AllReduceValues(dp.pg, distributed.Sum, loss*float64(n), float64(correct), float64(n), stopFlag(ctx))
	if err != nil {
		return stepTotals{}, err
	}
	return stepTotals{loss: s[0] / s[2], correct: int64(s[1]), n: int(s[2]), stop: stopCause(ctx, s[3])}, nil
}

// stopped returns why to stop after the step that t sums: alone,
// ctx.Err() now; in a group, the cause all ranks agreed on in totals.
func (dp *dataParallel) stopped(ctx context.Context, t stepTotals) error {
	if dp == nil {
		return ctx.Err()
	}
	return t.stop
}

// loaderContext returns the context for the training loader: in a group
// one that signals do not cancel, since a rank must not leave its epoch
// on its own, but only when all stop together (see totals).
func (dp *dataParallel) loaderContext(ctx context.Context) context.Context {
	if dp == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// interrupted returns the cause when some rank's context is cancelled,
// so that every rank stops at the same point; alone, ctx.Err().
func (dp *dataParallel) interrupted(ctx context.Context) error {
	if dp == nil {
		return ctx.Err()
	}
	s, err := distributed.AllReduceValues(dp.pg, distributed.Max, stopFlag(ctx))
	if err != nil {
		return err
	}
	return stopCause(ctx, s[0])
}

// stopFlag is 1 when ctx is cancelled, else 0.
func stopFlag(ctx context.Context) float64 {
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

// stopCause returns why to stop when flags, the stopFlags of the ranks
// reduced, is not zero.
func stopCause(ctx context.Context, flags float64) error {
	switch {
	case flags == 0:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return errPeerInterrupted
}

// agree replaces each value by rank 0's, so that decisions made from
// them (early stopping, the best epoch) are the same on every rank.
func (dp *dataParallel) agree(vals ...*float64) error {
	if dp == nil {
		return nil
	}
	v := make([]float64, len(vals))
	for i, p := range vals {
		v[i] = *p
	}
	got, err := distributed.BroadcastValues(dp.pg, 0, v...)
	if err != nil {
		return err
	}
	for i, p := range vals {
		*p = got[i]
	}
	return nil
}

// free releases the gradient buckets; the group stays for the process's
// next run.
func (dp *dataParallel) free() {
	if dp != nil {
		dp.reducer.Free()
	}
}
