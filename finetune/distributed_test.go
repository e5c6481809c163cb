package finetune

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/distributed"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// TestDataParallelAlone checks that a process training alone needs no
// group: FromEnv sees no rank, and the helpers do what one process does.
func TestDataParallelAlone(t *testing.T) {
	for _, v := range []string{"RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"} {
		t.Setenv(v, "")
	}
	dp, dev, err := joinDataParallel(context.Background(), torch.CPU, func(format string, args ...any) {
		t.Errorf("alone, joinDataParallel said "+format, args...)
	})
	if err != nil || dp != nil || dev != torch.CPU {
		t.Fatalf("joinDataParallel alone = %v, %v, %v; want nil, cpu, nil", dp, dev, err)
	}
	if !PrimaryProcess() || dp.String() != "one process" {
		t.Errorf("alone: primary %v, %q", PrimaryProcess(), dp.String())
	}
	order := []int{3, 1, 2}
	if got := dp.shard(order); !slices.Equal(got, order) {
		t.Errorf("shard = %v, want the whole order", got)
	}
	x, y := 1.5, 2.5
	if err := dp.agree(&x, &y); err != nil || x != 1.5 || y != 2.5 {
		t.Errorf("agree changed the values: %v %v %v", x, y, err)
	}
	tot, err := dp.totals(context.Background(), 0.5, 3, 4)
	if err != nil || tot != (stepTotals{loss: 0.5, correct: 3, n: 4}) {
		t.Errorf("totals = %+v, %v", tot, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := dp.stopped(ctx, tot); !errors.Is(err, context.Canceled) {
		t.Errorf("stopped after cancel: %v", err)
	}
	if dp.loaderContext(ctx) != ctx {
		t.Error("alone, the loader's context is not the run's")
	}
	if err := dp.interrupted(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted after cancel: %v", err)
	}
	if err := dp.interrupted(context.Background()); err != nil {
		t.Errorf("interrupted: %v", err)
	}
	if err := dp.reduceGradients(nil); err != nil {
		t.Error(err)
	}
	dp.free()
}

func TestStopCause(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if err := stopCause(ctx, 0); err != nil {
		t.Errorf("no rank stopped: %v", err)
	}
	if err := stopCause(ctx, 1); !errors.Is(err, errPeerInterrupted) {
		t.Errorf("another rank stopped: %v", err)
	}
	cancel()
	if err := stopCause(ctx, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("this rank stopped: %v", err)
	}
}

// TestDataParallelOneRank runs the helpers over a real group of one rank,
// where every collective leaves the values as they are.
// TestDataParallelStartTimesOut: rank 0 of 2 alone says where it waits
// and gives up after FINETUNE_DIST_TIMEOUT saying how many ranks came,
// instead of hanging.
func TestDataParallelStartTimesOut(t *testing.T) {
	port := freePort(t)
	for k, v := range map[string]string{"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "",
		"MASTER_PORT": strconv.Itoa(port), "FINETUNE_DIST_TIMEOUT": "2s", "FINETUNE_DIST_BACKEND": "gloo"} {
		t.Setenv(k, v)
	}
	var said []string
	start := time.Now()
	_, _, err := joinDataParallel(context.Background(), torch.CPU, func(format string, args ...any) {
		said = append(said, fmt.Sprintf(format, args...))
	})
	require.ErrorContains(t, err, "only 1 of 2 ranks arrived")
	require.Less(t, time.Since(start), 10*time.Second)
	require.Equal(t, []string{fmt.Sprintf("waiting for 2 ranks at 127.0.0.1:%d (at most 2s, FINETUNE_DIST_TIMEOUT)", port)}, said)
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestDataParallelOneRank(t *testing.T) {
	pg, err := distributed.Init(context.Background(), distributed.Config{WorldSize: 1, MasterPort: freePort(t), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	dp := &dataParallel{pg: pg, reducer: distributed.NewGradReducer(pg, 0)}
	defer dp.free()
	if dp.String() != "rank 0 of 1 (gloo)" {
		t.Errorf("String() = %q", dp.String())
	}
	m := must[*Model](t)(NewModel("resnet18", HeadConfig{Pooling: "avg"}, 2, 32))
	defer nn.Free(m)
	if err := dp.broadcastModel(m); err != nil {
		t.Fatal(err)
	}
	if err := dp.syncBuffers(m); err != nil {
		t.Fatal(err)
	}
	s := torch.NewScope()
	defer s.Close()
	x := must[*torch.Tensor](t)(torch.Randn([]int64{2, 3, 32, 32}))
	logits := must[*torch.Tensor](t)(m.Forward(x))
	loss := must[*torch.Tensor](t)(logits.Sum())
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	w := nn.Trainable(m)
	g0 := must[*torch.Tensor](t)(must[*torch.Tensor](t)(w[0].Value.Grad()).Clone())
	if err := dp.reduceGradients(w); err != nil {
		t.Fatal(err)
	}
	g1 := must[*torch.Tensor](t)(w[0].Value.Grad())
	if a, b := must[[]float32](t)(g0.Float32s()), must[[]float32](t)(g1.Float32s()); !slices.Equal(a, b) {
		t.Error("the average over one rank changed the gradient")
	}
	tot, err := dp.totals(context.Background(), 0.25, 3, 4)
	if err != nil || tot != (stepTotals{loss: 0.25, correct: 3, n: 4}) {
		t.Errorf("totals = %+v, %v", tot, err)
	}
	if err := dp.interrupted(context.Background()); err != nil {
		t.Errorf("interrupted: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if tot, err := dp.totals(ctx, 0.25, 3, 4); err != nil || !errors.Is(dp.stopped(ctx, tot), context.Canceled) {
		t.Errorf("totals after cancel: %+v, %v", tot, err)
	}
	if dp.loaderContext(ctx).Err() != nil {
		t.Error("in a group, the loader's context is cancelled with the run's")
	}
	v := 0.75
	if err := dp.agree(&v); err != nil || v != 0.75 {
		t.Errorf("agree: %v, %v", v, err)
	}
}

func TestPrimaryProcess(t *testing.T) {
	for _, tc := range []struct {
		rank, slurm string
		want        bool
	}{{"", "", true}, {"0", "", true}, {"1", "", false}, {"", "2", false}} {
		for _, v := range []string{"RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NNODES", "MASTER_ADDR"} {
			t.Setenv(v, "")
		}
		if tc.rank != "" {
			t.Setenv("RANK", tc.rank)
			t.Setenv("WORLD_SIZE", "4")
		}
		if tc.slurm != "" {
			t.Setenv("SLURM_PROCID", tc.slurm)
			t.Setenv("SLURM_NTASKS", "4")
		}
		if got := PrimaryProcess(); got != tc.want {
			t.Errorf("RANK=%q SLURM_PROCID=%q: PrimaryProcess() = %v", tc.rank, tc.slurm, got)
		}
	}
}
