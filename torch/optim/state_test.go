package optim

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/stretchr/testify/require"
)

// randomParams returns parameters of the test shapes drawn from g.
func randomParams(t *testing.T, g *torch.Generator) []*torch.Tensor {
	t.Helper()
	var ps []*torch.Tensor
	for _, shape := range [][]int64{{3, 4}, {4}, {2, 3, 3, 3}} {
		p := torch.Must(torch.Randn(shape, g))
		require.NoError(t, p.SetRequiresGrad(true))
		ps = append(ps, p)
	}
	return ps
}

// clones returns detached copies of ps that require grad.
func clones(t *testing.T, ps []*torch.Tensor) []*torch.Tensor {
	t.Helper()
	var out []*torch.Tensor
	for _, p := range ps {
		c := torch.Must(torch.Must(p.Detach()).Clone())
		require.NoError(t, c.SetRequiresGrad(true))
		out = append(out, c)
	}
	return out
}

// throughCheckpoint copies s the way a checkpoint does: the scalars
// through JSON and the tensors through their raw bytes.
func throughCheckpoint(t *testing.T, s *State) *State {
	t.Helper()
	raw, err := json.Marshal(s)
	require.NoError(t, err)
	var out State
	require.NoError(t, json.Unmarshal(raw, &out))
	out.Tensors = map[string]*torch.Tensor{}
	for name, v := range s.Tensors {
		b, err := v.Bytes()
		require.NoError(t, err)
		out.Tensors[name] = torch.Must(torch.FromBytes(b, v.DType(), v.Shape()...))
	}
	return &out
}

// twoGroups splits ps into two groups made by mk, the second with a
// different learning rate.
func twoGroups(ps []*torch.Tensor, mk func(...*torch.Tensor) ParamGroup) []ParamGroup {
	a, b := mk(ps[:2]...), mk(ps[2:]...)
	b.LR /= 3
	return []ParamGroup{a, b}
}

func sgdGroup(ps ...*torch.Tensor) ParamGroup {
	return ParamGroup{Params: ps, LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 1e-3}
}

func amsGroup(mk func(...*torch.Tensor) ParamGroup) func(...*torch.Tensor) ParamGroup {
	return func(ps ...*torch.Tensor) ParamGroup {
		g := mk(ps...)
		g.LR, g.AMSGrad = 1e-2, true
		return g
	}
}

// TestResumeFromState runs 10 steps, saves the state through a
// checkpoint-like copy, loads it into a fresh optimizer over copies of the
// parameters, and requires both to stay bit for bit equal for 10 more
// steps.
func TestResumeFromState(t *testing.T) {
	tests := []struct {
		name  string
		new   func(...ParamGroup) (Optimizer, error)
		group func(...*torch.Tensor) ParamGroup
	}{
		{"SGD", constructors["SGD"], sgdGroup},
		{"Adam", constructors["Adam"], amsGroup(AdamGroup)},
		{"AdamW", constructors["AdamW"], amsGroup(AdamWGroup)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := torch.NewScope()
			defer s.Close()
			gen := torch.Must(torch.NewGenerator(7))
			defer gen.Free()
			a := randomParams(t, gen)
			optA, err := tc.new(twoGroups(a, tc.group)...)
			require.NoError(t, err)
			var b []*torch.Tensor
			var optB Optimizer
			for step := range 20 {
				if step == 10 {
					optA.Groups()[1].LR /= 2 // a scheduler's change, to be restored too
					saved, err := optA.State()
					require.NoError(t, err)
					loaded := throughCheckpoint(t, saved)
					saved.Free()

					b = clones(t, a)
					groups := twoGroups(b, tc.group)
					for i := range groups {
						groups[i].LR = 123 // overwritten by LoadState
					}
					optB, err = tc.new(groups...)
					require.NoError(t, err)
					require.NoError(t, optB.LoadState(loaded))
					loaded.Free()
					require.Equal(t, optA.Groups()[1].LR, optB.Groups()[1].LR)
				}
				for i, p := range a {
					g := torch.Must(torch.Randn(p.Shape(), gen))
					require.NoError(t, p.SetGrad(g))
					if b != nil {
						require.NoError(t, b[i].SetGrad(g))
					}
				}
				require.NoError(t, optA.Step())
				if optB != nil {
					require.NoError(t, optB.Step())
				}
			}
			for i := range a {
				require.Equal(t, torch.Must(a[i].Float32s()), torch.Must(b[i].Float32s()), "parameter %d", i)
			}
			stA, err := optA.State()
			require.NoError(t, err)
			stB, err := optB.State()
			require.NoError(t, err)
			require.Equal(t, stA.Groups, stB.Groups)
			require.Len(t, stB.Tensors, len(stA.Tensors))
			for name, v := range stA.Tensors {
				require.Contains(t, stB.Tensors, name)
				require.Equal(t, torch.Must(v.Float32s()), torch.Must(stB.Tensors[name].Float32s()), name)
			}
		})
	}
}

// TestLoadStateRejects checks that a state that does not fit is refused,
// with the optimizer left as it was.
func TestLoadStateRejects(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	gen := torch.Must(torch.NewGenerator(3))
	defer gen.Free()
	ps := randomParams(t, gen)
	for _, p := range ps {
		require.NoError(t, p.SetGrad(torch.Must(torch.Randn(p.Shape(), gen))))
	}
	opt, err := NewAdam(twoGroups(ps, AdamGroup)...)
	require.NoError(t, err)
	require.NoError(t, opt.Step())
	good, err := opt.State()
	require.NoError(t, err)

	edit := func(f func(*State)) *State {
		c := *good
		c.Groups = make([]GroupState, len(good.Groups))
		for i, g := range good.Groups {
			g.Params = slices.Clone(g.Params)
			c.Groups[i] = g
		}
		c.Tensors = maps.Clone(good.Tensors)
		f(&c)
		return &c
	}
	tests := []struct {
		name  string
		state *State
		want  string
	}{
		{"other optimizer", edit(func(s *State) { s.Optimizer = "SGD" }), `state is of optimizer "SGD"`},
		{"group count", edit(func(s *State) { s.Groups = s.Groups[:1] }), "1 parameter groups, optimizer 2"},
		{"group size", edit(func(s *State) { s.Groups[0].Params = s.Groups[0].Params[:1] }), "group 0: state has 1 parameters, optimizer 2"},
		{"repeated parameter", edit(func(s *State) { s.Groups[1].Params[0] = 0 }), "parameter number 0 appears more than once"},
		{"bad hyper-parameter", edit(func(s *State) { s.Groups[1].Betas[1] = 1 }), "group 1: invalid Betas[1] 1"},
		{"bad name", edit(func(s *State) { s.Tensors["exp_avg"] = good.Tensors["state.0.exp_avg"] }), "exp_avg: not a state.<i>.<buffer> name"},
		{"unknown parameter", edit(func(s *State) { s.Tensors["state.9.exp_avg"] = good.Tensors["state.0.exp_avg"] }), "no parameter 9"},
		{"unknown buffer", edit(func(s *State) { s.Tensors["state.0.velocity"] = good.Tensors["state.0.exp_avg"] }), `unknown buffer "velocity"`},
		{"wrong shape", edit(func(s *State) { s.Tensors["state.1.exp_avg"] = good.Tensors["state.0.exp_avg"] }), "shape [3 4], parameter [4]"},
	}
	before := torch.Must(opt.State())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := opt.LoadState(tc.state)
			require.ErrorContains(t, err, "optim: Adam load state: ")
			require.ErrorContains(t, err, tc.want)
			after := torch.Must(opt.State())
			require.Equal(t, before.Groups, after.Groups)
			for name, v := range before.Tensors {
				require.Equal(t, torch.Must(v.Float32s()), torch.Must(after.Tensors[name].Float32s()), name)
			}
		})
	}
}
