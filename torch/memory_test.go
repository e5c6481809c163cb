package torch

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// rssBytes reads the resident set size of this process.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/statm")
	require.NoError(t, err)
	fields := strings.Fields(string(raw))
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	require.NoError(t, err)
	return pages * int64(os.Getpagesize())
}

// tinyNet is a small conv net written with the functional ops only.
type tinyNet struct {
	conv1, bnW, bnB, bnMean, bnVar, conv2, fcW, fcB *Tensor
}

func newTinyNet(t *testing.T) *tinyNet {
	param := func(shape ...int64) *Tensor {
		p := Must(Randn(shape))
		p = Must(p.MulScalar(0.1)).Keep()
		require.NoError(t, p.SetRequiresGrad(true))
		return p
	}
	n := &tinyNet{
		conv1: param(8, 3, 3, 3), conv2: param(16, 8, 3, 3), fcW: param(4, 16), fcB: param(4),
		bnW: Must(Ones([]int64{8})).Keep(), bnB: Must(Zeros([]int64{8})).Keep(),
		bnMean: Must(Zeros([]int64{8})).Keep(), bnVar: Must(Ones([]int64{8})).Keep(),
	}
	require.NoError(t, n.bnW.SetRequiresGrad(true))
	require.NoError(t, n.bnB.SetRequiresGrad(true))
	return n
}

func (n *tinyNet) params() []*Tensor {
	return []*Tensor{n.conv1, n.bnW, n.bnB, n.conv2, n.fcW, n.fcB}
}

func (n *tinyNet) loss(x, y *Tensor) (*Tensor, error) {
	h, err := Conv2d(x, n.conv1, nil, Conv2dOptions{Padding: [2]int64{1, 1}})
	if err != nil {
		return nil, err
	}
	if h, err = BatchNorm(h, n.bnW, n.bnB, n.bnMean, n.bnVar, true, 0.1, 1e-5); err != nil {
		return nil, err
	}
	if err = h.Relu_(); err != nil {
		return nil, err
	}
	if h, err = MaxPool2d(h, MaxPool2dOptions{Kernel: [2]int64{2, 2}}); err != nil {
		return nil, err
	}
	if h, err = Conv2d(h, n.conv2, nil, Conv2dOptions{Padding: [2]int64{1, 1}}); err != nil {
		return nil, err
	}
	if h, err = h.Relu(); err != nil {
		return nil, err
	}
	if h, err = AdaptiveAvgPool2d(h, 1, 1); err != nil {
		return nil, err
	}
	if h, err = h.Flatten(1, -1); err != nil {
		return nil, err
	}
	if h, err = Linear(h, n.fcW, n.fcB); err != nil {
		return nil, err
	}
	return CrossEntropy(h, y, LossOptions{})
}

// step runs forward, backward and a plain SGD update in one scope.
func (n *tinyNet) step(x, y *Tensor, lr float64) (float64, error) {
	s := NewScope()
	defer s.Close()
	loss, err := n.loss(x, y)
	if err != nil {
		return 0, err
	}
	if err := loss.Backward(); err != nil {
		return 0, err
	}
	err = NoGrad(func() error {
		for _, p := range n.params() {
			g, err := p.Grad()
			if err != nil {
				return err
			}
			if err := p.Add_(g, -lr); err != nil {
				return err
			}
			if err := p.ClearGrad(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return loss.Item()
}

// TestTrainingLoopMemoryIsFlat runs 2,000 training steps and requires the
// resident set to grow by less than 20 MiB after warm-up.
func TestTrainingLoopMemoryIsFlat(t *testing.T) {
	ManualSeed(1)
	n := newTinyNet(t)
	x := Must(Randn([]int64{16, 3, 16, 16})).Keep()
	y := Must(Randint(0, 4, []int64{16})).Keep()
	var before int64
	for i := range 2000 {
		_, err := n.step(x, y, 0.01)
		require.NoError(t, err)
		if i == 200 {
			runtime.GC()
			before = rssBytes(t)
		}
	}
	runtime.GC()
	growth := rssBytes(t) - before
	t.Logf("RSS growth over 1,800 steps: %.2f MiB", float64(growth)/(1<<20))
	require.Less(t, growth, int64(20<<20))
}

// TestScopeFreesIntermediates checks the ownership rules of scopes.
func TestScopeFreesIntermediates(t *testing.T) {
	outer := NewScope()
	a := Must(Ones([]int64{2}))
	var kept, moved, inner *Tensor
	err := WithScope(func() error {
		inner = Must(a.MulScalar(2))
		kept = Must(a.MulScalar(3)).Keep()
		moved = Must(a.MulScalar(4)).MoveTo(outer)
		return nil
	})
	require.NoError(t, err)
	require.False(t, inner.Defined(), "intermediate outlived its scope")
	_, err = inner.Sum()
	require.ErrorIs(t, err, ErrFreed)
	require.True(t, kept.Defined())
	require.True(t, moved.Defined())
	require.Equal(t, 2, outer.Len(), "a and the moved tensor")
	outer.Close()
	require.False(t, a.Defined())
	require.False(t, moved.Defined())
	require.Equal(t, []float32{3, 3}, Must(kept.Float32s()))
	kept.Free()
	kept.Free()
	require.False(t, kept.Defined())
}

// TestScopeIgnoresOtherGoroutines: a loader goroutine's tensors never join
// the training goroutine's scope.
func TestScopeIgnoresOtherGoroutines(t *testing.T) {
	s := NewScope()
	defer s.Close()
	done := make(chan *Tensor)
	go func() { done <- Must(Ones([]int64{3})) }()
	other := <-done
	s.Close()
	require.True(t, other.Defined())
	require.Equal(t, 0, s.Len())
}

// TestNoGrad checks that grad mode is scoped to the function and restored.
func TestNoGrad(t *testing.T) {
	x := Must(Ones([]int64{2}))
	require.NoError(t, x.SetRequiresGrad(true))
	require.True(t, IsGradEnabled())
	err := NoGrad(func() error {
		require.False(t, IsGradEnabled())
		y := Must(x.MulScalar(2))
		require.False(t, y.RequiresGrad())
		return EnableGrad(func() error {
			require.True(t, Must(x.MulScalar(2)).RequiresGrad())
			return nil
		})
	})
	require.NoError(t, err)
	require.True(t, IsGradEnabled())
	require.True(t, Must(x.MulScalar(2)).RequiresGrad())
}
