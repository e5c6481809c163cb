package optim

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/finetune-go/finetune/internal/testref"
	"github.com/finetune-go/finetune/torch"
	"github.com/stretchr/testify/require"
)

// optimFixture is what scripts/fixtures/optim.py writes.
type optimFixture struct {
	Params []*testref.Tensor   `json:"params"`
	Grads  [][]*testref.Tensor `json:"grads"` // [step][param]
	Cases  []optimCase         `json:"cases"`
}

type optimCase struct {
	Name      string       `json:"name"`
	Optimizer string       `json:"optimizer"`
	Groups    []GroupState `json:"groups"`       // as constructed
	Final     []GroupState `json:"param_groups"` // after the last step
	LRChanges []struct {
		After, Group int
		LR           float64 `json:"lr"`
	} `json:"lr_changes"`
	Skip []struct {
		Step, Param int
	} `json:"skip"`
	Expected [][]*testref.Tensor        `json:"expected"` // [step][param]
	State    map[string]*testref.Tensor `json:"state"`
}

var constructors = map[string]func(...ParamGroup) (Optimizer, error){
	"SGD":   func(g ...ParamGroup) (Optimizer, error) { return NewSGD(g...) },
	"Adam":  func(g ...ParamGroup) (Optimizer, error) { return NewAdam(g...) },
	"AdamW": func(g ...ParamGroup) (Optimizer, error) { return NewAdamW(g...) },
}

// diff tracks how far Go's values are from PyTorch's.
type diff struct {
	maxAbs  float64
	values  int
	inexact int
}

// check requires got to match want within rel 1e-6 and abs 1e-7 and
// records the differences.
func (d *diff) check(t *testing.T, want *testref.Tensor, got *torch.Tensor, what string) {
	t.Helper()
	require.Equal(t, want.Shape, got.Shape(), what)
	vals, err := got.Float32s()
	require.NoError(t, err)
	for i, w := range want.Data {
		g := float64(vals[i])
		delta := math.Abs(g - w)
		require.LessOrEqual(t, delta, 1e-7+1e-6*math.Abs(w), "%s element %d: Go %v, PyTorch %v", what, i, g, w)
		d.maxAbs = max(d.maxAbs, delta)
		d.values++
		if g != w {
			d.inexact++
		}
	}
}

// TestParityWithPyTorch runs every fixture case, 20 steps each, and checks
// the parameters after every step and the final state against PyTorch's.
func TestParityWithPyTorch(t *testing.T) {
	var f optimFixture
	testref.JSON(t, "optim.py", &f)
	require.NotEmpty(t, f.Cases)
	var total diff
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) {
			s := torch.NewScope()
			defer s.Close()
			params := make([]*torch.Tensor, len(f.Params))
			for i, init := range f.Params {
				params[i] = init.Torch(t)
				require.NoError(t, params[i].SetRequiresGrad(true))
			}
			var groups []ParamGroup
			for _, gs := range c.Groups {
				var ps []*torch.Tensor
				for _, i := range gs.Params {
					ps = append(ps, params[i])
				}
				groups = append(groups, gs.group(ps))
			}
			opt, err := constructors[c.Optimizer](groups...)
			require.NoError(t, err)

			var d diff
			for step := 1; step <= len(c.Expected); step++ {
				for i, p := range params {
					var g *torch.Tensor
					if !slices.ContainsFunc(c.Skip, func(s struct{ Step, Param int }) bool { return s.Step == step && s.Param == i }) {
						g = f.Grads[step-1][i].Torch(t)
					}
					require.NoError(t, p.SetGrad(g))
				}
				require.NoError(t, opt.Step())
				for i, p := range params {
					d.check(t, c.Expected[step-1][i], p, fmt.Sprintf("step %d parameter %d", step, i))
				}
				for _, ch := range c.LRChanges {
					if ch.After == step {
						opt.Groups()[ch.Group].LR = ch.LR
					}
				}
			}

			st, err := opt.State()
			require.NoError(t, err)
			require.Equal(t, c.Optimizer, st.Optimizer)
			require.Equal(t, c.Final, st.Groups, "param_groups")
			require.ElementsMatch(t, slices.Collect(maps.Keys(c.State)), slices.Collect(maps.Keys(st.Tensors)), "state tensor names")
			for name, want := range c.State {
				d.check(t, want, st.Tensors[name], name)
			}
			t.Logf("max |Go-PyTorch| %g; %d of %d values not bit-identical", d.maxAbs, d.inexact, d.values)
			total.maxAbs = max(total.maxAbs, d.maxAbs)
			total.values += d.values
			total.inexact += d.inexact
		})
	}
	t.Logf("all cases: max |Go-PyTorch| %g; %d of %d values not bit-identical", total.maxAbs, total.inexact, total.values)
}
