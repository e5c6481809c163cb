package optim

import (
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/stretchr/testify/require"
)

// TestConstructorsValidate checks that bad hyper-parameters and parameter
// lists are refused with an error naming the culprit.
func TestConstructorsValidate(t *testing.T) {
	p := torch.Must(torch.Zeros([]int64{2}))
	q := torch.Must(torch.Zeros([]int64{3}))
	adam := func(f func(*ParamGroup)) ParamGroup {
		g := AdamGroup(p)
		f(&g)
		return g
	}
	tests := []struct {
		name   string
		opt    string
		groups []ParamGroup
		want   string
	}{
		{"negative LR", "SGD", []ParamGroup{{Params: []*torch.Tensor{p}, LR: -0.1}}, "optim: SGD: group 0: invalid LR -0.1"},
		{"NaN LR", "AdamW", []ParamGroup{adam(func(g *ParamGroup) { g.LR = math.NaN() })}, "optim: AdamW: group 0: invalid LR NaN"},
		{"negative momentum", "SGD", []ParamGroup{{Params: []*torch.Tensor{p}, LR: 0.1, Momentum: -1}}, "invalid Momentum -1"},
		{"negative weight decay", "SGD", []ParamGroup{{Params: []*torch.Tensor{p}, LR: 0.1, WeightDecay: -1}}, "invalid WeightDecay -1"},
		{"Nesterov without momentum", "SGD", []ParamGroup{{Params: []*torch.Tensor{p}, LR: 0.1, Nesterov: true}}, "invalid Nesterov with Momentum 0"},
		{"Nesterov with dampening", "SGD", []ParamGroup{{Params: []*torch.Tensor{p}, LR: 0.1, Momentum: 0.9, Dampening: 0.1, Nesterov: true}}, "invalid Nesterov with Momentum 0.9 and Dampening 0.1"},
		{"beta1 of 1", "Adam", []ParamGroup{adam(func(g *ParamGroup) { g.Betas[0] = 1 })}, "invalid Betas[0] 1, want it in [0, 1)"},
		{"negative beta2", "AdamW", []ParamGroup{adam(func(g *ParamGroup) { g.Betas[1] = -0.5 })}, "invalid Betas[1] -0.5"},
		{"negative eps", "Adam", []ParamGroup{adam(func(g *ParamGroup) { g.Eps = -1e-8 })}, "invalid Eps -1e-08"},
		{"negative Adam weight decay", "Adam", []ParamGroup{adam(func(g *ParamGroup) { g.WeightDecay = -1 })}, "invalid WeightDecay -1"},
		{"bad second group", "Adam", []ParamGroup{AdamGroup(p), adam(func(g *ParamGroup) { g.Params, g.LR = []*torch.Tensor{q}, -1 })}, "group 1: invalid LR -1"},
		{"no groups", "SGD", nil, "optim: SGD: no parameters to optimize"},
		{"empty group", "Adam", []ParamGroup{AdamGroup()}, "optim: Adam: no parameters to optimize"},
		{"nil parameter", "SGD", []ParamGroup{{Params: []*torch.Tensor{p, nil}, LR: 0.1}}, "group 0: parameter 1 is nil"},
		{"parameter in two groups", "AdamW", []ParamGroup{AdamWGroup(p, q), AdamWGroup(q)}, "group 1: parameter 0 appears more than once"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := constructors[tc.opt](tc.groups...)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestStepValidatesGroups checks that a bad value assigned through Groups
// makes Step fail before it changes any parameter.
func TestStepValidatesGroups(t *testing.T) {
	p := torch.Must(torch.Ones([]int64{2}))
	require.NoError(t, p.SetRequiresGrad(true))
	require.NoError(t, p.SetGrad(torch.Must(torch.Ones([]int64{2}))))
	opt, err := NewSGD(ParamGroup{Params: []*torch.Tensor{p}, LR: 0.5})
	require.NoError(t, err)
	opt.Groups()[0].LR = -1
	require.ErrorContains(t, opt.Step(), "optim: SGD: group 0: invalid LR -1")
	require.Equal(t, []float32{1, 1}, torch.Must(p.Float32s()))
	opt.Groups()[0].LR = 0.25
	require.NoError(t, opt.Step())
	require.Equal(t, []float32{0.75, 0.75}, torch.Must(p.Float32s()))
}

// TestNewCopiesGroups checks that the constructors keep their own copy of
// the groups and their parameter lists.
func TestNewCopiesGroups(t *testing.T) {
	p := torch.Must(torch.Zeros([]int64{2}))
	g := AdamWGroup(p)
	opt, err := NewAdamW(g)
	require.NoError(t, err)
	g.LR = 5
	g.Params[0] = nil
	got := opt.Groups()[0]
	require.Equal(t, 1e-3, got.LR)
	require.Same(t, p, got.Params[0])
	require.Equal(t, [2]float64{0.9, 0.999}, got.Betas)
	require.Equal(t, 1e-8, got.Eps)
	require.Equal(t, 1e-2, got.WeightDecay)
}

// TestZeroGrad checks that ZeroGrad drops the gradients and that Step then
// leaves the parameters alone.
func TestZeroGrad(t *testing.T) {
	ps := []*torch.Tensor{torch.Must(torch.Ones([]int64{2})), torch.Must(torch.Ones([]int64{3}))}
	for _, p := range ps {
		require.NoError(t, p.SetRequiresGrad(true))
		require.NoError(t, p.SetGrad(torch.Must(p.OnesLike())))
	}
	opt, err := NewAdam(AdamGroup(ps...))
	require.NoError(t, err)
	require.NoError(t, opt.ZeroGrad())
	for _, p := range ps {
		require.Nil(t, torch.Must(p.Grad()))
	}
	require.NoError(t, opt.Step())
	st, err := opt.State()
	require.NoError(t, err)
	require.Empty(t, st.Tensors, "no state for parameters that never had a gradient")
	require.Equal(t, []float32{1, 1}, torch.Must(ps[0].Float32s()))
}

// rssBytes reads the resident set size of this process.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/statm")
	require.NoError(t, err)
	pages, err := strconv.ParseInt(strings.Fields(string(raw))[1], 10, 64)
	require.NoError(t, err)
	return pages * int64(os.Getpagesize())
}

// TestStepMemoryIsFlat runs 2,000 AMSGrad AdamW steps and requires that
// nothing joins the caller's scope and that the resident set grows by less
// than 20 MiB after warm-up (the bound of torch's own loop test: allocator
// and Go heap noise on a loaded machine reach a few MiB). The parameters
// hold 0.6 MiB, so one leaked temporary per step would show as a gigabyte.
func TestStepMemoryIsFlat(t *testing.T) {
	gen := torch.Must(torch.NewGenerator(1))
	defer gen.Free()
	var ps []*torch.Tensor
	for _, shape := range [][]int64{{256, 512}, {512}, {64, 32, 3, 3}} {
		p := torch.Must(torch.Randn(shape, gen))
		require.NoError(t, p.SetRequiresGrad(true))
		require.NoError(t, p.SetGrad(torch.Must(torch.Randn(shape, gen))))
		ps = append(ps, p)
	}
	g := AdamWGroup(ps...)
	g.AMSGrad = true
	opt, err := NewAdamW(g)
	require.NoError(t, err)

	s := torch.NewScope()
	defer s.Close()
	var before int64
	for i := range 2000 {
		require.NoError(t, opt.Step())
		if i == 100 {
			runtime.GC()
			before = rssBytes(t)
		}
	}
	require.Zero(t, s.Len(), "Step left tensors in the caller's scope")
	runtime.GC()
	growth := rssBytes(t) - before
	t.Logf("RSS growth over 1,900 steps: %.2f MiB", float64(growth)/(1<<20))
	require.Less(t, growth, int64(20<<20))
}

// TestStepWrapsTorchErrors checks that a libtorch failure comes back
// wrapped with the group and parameter it happened at.
func TestStepWrapsTorchErrors(t *testing.T) {
	p := torch.Must(torch.Ones([]int64{2}))
	q := torch.Must(torch.Ones([]int64{2}))
	opt, err := NewAdam(AdamGroup(p), AdamGroup(q))
	require.NoError(t, err)
	q.Free()
	err = opt.Step()
	require.ErrorIs(t, err, torch.ErrFreed)
	require.ErrorContains(t, err, "optim: Adam step: group 1 parameter 0: ")
}
