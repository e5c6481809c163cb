package nn_test

import (
	"testing"

	"github.com/finetune-go/finetune/internal/testref"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

type namedRef struct {
	Name  string          `json:"name"`
	Value *testref.Tensor `json:"value"`
}

type moduleCase struct {
	Name       string          `json:"name"`
	Seed       uint64          `json:"seed"`
	Input      *testref.Tensor `json:"input"`
	Init       []namedRef      `json:"init"`
	Output     *testref.Tensor `json:"output"`
	Cot        *testref.Tensor `json:"cot"`
	InputGrad  *testref.Tensor `json:"input_grad"`
	ParamGrads []namedRef      `json:"param_grads"`
	After      []namedRef      `json:"after"`
	Modes      []struct {
		Name     string `json:"name"`
		Training bool   `json:"training"`
	} `json:"modes"`
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

func bn2d(t *testing.T, edit func(*nn.BatchNormConfig)) nn.Layer {
	c := nn.DefaultBatchNorm(3)
	if edit != nil {
		edit(&c)
	}
	return must[*nn.BatchNorm](t)(nn.NewBatchNorm2d(c))
}

// tiny matches the Sequential of nn_modules.py.
func tiny(t *testing.T) nn.Layer {
	return nn.NewSequential(
		must[*nn.Conv2d](t)(nn.NewConv2d(nn.Conv2dConfig{InChannels: 3, OutChannels: 4, Kernel: [2]int64{3, 3}, Padding: [2]int64{1, 1}})),
		must[*nn.BatchNorm](t)(nn.NewBatchNorm2d(nn.DefaultBatchNorm(4))),
		nn.NewReLU(true),
		nn.NewMaxPool2d(torch.MaxPool2dOptions{Kernel: [2]int64{2, 2}}),
		must[*nn.Conv2d](t)(nn.NewConv2d(nn.Conv2dConfig{InChannels: 4, OutChannels: 6, Kernel: [2]int64{3, 3}, Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}, Bias: true})),
		nn.NewReLU(false),
		nn.NewAdaptiveAvgPool2d(1, 1),
		nn.NewFlatten(),
		must[*nn.Dropout](t)(nn.NewDropout(0)),
		must[*nn.Linear](t)(nn.NewLinear(6, 3, true)),
		nn.NewIdentity(),
	)
}

func isBN(_ string, m nn.Module) bool { _, ok := m.(*nn.BatchNorm); return ok }

// perturbStats draws running statistics as nn_modules.py does.
func perturbStats(t *testing.T, m nn.Module) {
	require.NoError(t, torch.NoGrad(func() error {
		return nn.Walk(m, func(_ string, x nn.Module) error {
			if !isBN("", x) {
				return nil
			}
			if err := x.Base().Buffer("running_mean").Uniform_(-0.5, 0.5, nil); err != nil {
				return err
			}
			return x.Base().Buffer("running_var").Uniform_(0.5, 2.0, nil)
		})
	}))
}

var moduleBuilders = map[string]struct {
	build    func(t *testing.T) nn.Layer
	eval     bool
	setup    func(t *testing.T, m nn.Module)
	forwards int
}{
	"conv2d": {build: func(t *testing.T) nn.Layer {
		return must[*nn.Conv2d](t)(nn.NewConv2d(nn.Conv2dConfig{InChannels: 3, OutChannels: 4, Kernel: [2]int64{3, 3}, Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}, Bias: true}))
	}},
	"conv2d_groups_nobias": {build: func(t *testing.T) nn.Layer {
		return must[*nn.Conv2d](t)(nn.NewConv2d(nn.Conv2dConfig{InChannels: 4, OutChannels: 6, Kernel: [2]int64{3, 2}, Padding: [2]int64{1, 0}, Dilation: [2]int64{1, 2}, Groups: 2}))
	}},
	"linear":            {build: func(t *testing.T) nn.Layer { return must[*nn.Linear](t)(nn.NewLinear(5, 3, true)) }},
	"linear_nobias":     {build: func(t *testing.T) nn.Layer { return must[*nn.Linear](t)(nn.NewLinear(5, 3, false)) }},
	"batchnorm2d_train": {build: func(t *testing.T) nn.Layer { return bn2d(t, nil) }, forwards: 3},
	"batchnorm2d_eval": {build: func(t *testing.T) nn.Layer { return bn2d(t, nil) }, eval: true,
		setup: perturbStats},
	"batchnorm2d_cumulative": {build: func(t *testing.T) nn.Layer {
		return bn2d(t, func(c *nn.BatchNormConfig) { c.Momentum = nil })
	}, forwards: 3},
	"batchnorm2d_no_affine": {build: func(t *testing.T) nn.Layer {
		return bn2d(t, func(c *nn.BatchNormConfig) { c.Affine = false })
	}},
	"batchnorm2d_untracked": {build: func(t *testing.T) nn.Layer {
		return bn2d(t, func(c *nn.BatchNormConfig) { c.TrackRunningStats = false })
	}},
	"batchnorm1d": {build: func(t *testing.T) nn.Layer {
		return must[*nn.BatchNorm](t)(nn.NewBatchNorm1d(nn.DefaultBatchNorm(6)))
	}, forwards: 2},
	"dropout_train": {build: func(t *testing.T) nn.Layer { return must[*nn.Dropout](t)(nn.NewDropout(0.4)) }},
	"dropout_eval":  {build: func(t *testing.T) nn.Layer { return must[*nn.Dropout](t)(nn.NewDropout(0.4)) }, eval: true},
	"relu":          {build: func(t *testing.T) nn.Layer { return nn.NewReLU(false) }},
	"maxpool2d": {build: func(t *testing.T) nn.Layer {
		return nn.NewMaxPool2d(torch.MaxPool2dOptions{Kernel: [2]int64{3, 3}, Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}})
	}},
	"maxpool2d_ceil": {build: func(t *testing.T) nn.Layer {
		return nn.NewMaxPool2d(torch.MaxPool2dOptions{Kernel: [2]int64{2, 2}, CeilMode: true})
	}},
	"adaptive_avg_pool2d": {build: func(t *testing.T) nn.Layer { return nn.NewAdaptiveAvgPool2d(2, 3) }},
	"flatten":             {build: func(t *testing.T) nn.Layer { return nn.NewFlatten() }},
	"identity":            {build: func(t *testing.T) nn.Layer { return nn.NewIdentity() }},
	"sequential_train":    {build: tiny, forwards: 2},
	"sequential_bn_eval_in_training_parent": {build: tiny, setup: func(t *testing.T, m nn.Module) {
		perturbStats(t, m)
		nn.TrainWhere(m, false, isBN)
	}},
	"silu":        {build: func(t *testing.T) nn.Layer { return nn.NewSiLU(false) }},
	"sigmoid":     {build: func(t *testing.T) nn.Layer { return nn.NewSigmoid() }},
	"hardswish":   {build: func(t *testing.T) nn.Layer { return nn.NewHardswish(false) }},
	"hardsigmoid": {build: func(t *testing.T) nn.Layer { return nn.NewHardsigmoid(false) }},
	"layernorm": {build: func(t *testing.T) nn.Layer {
		return must[*nn.LayerNorm](t)(nn.NewLayerNorm([]int64{3, 4}, 1e-5, true))
	}},
	"layernorm_no_affine": {build: func(t *testing.T) nn.Layer {
		return must[*nn.LayerNorm](t)(nn.NewLayerNorm([]int64{4}, 1e-6, false))
	}},
	"layernorm2d": {build: func(t *testing.T) nn.Layer { return must[*nn.LayerNorm2d](t)(nn.NewLayerNorm2d(3, 1e-6)) }},
	"gelu":        {build: func(t *testing.T) nn.Layer { return must[*nn.GELU](t)(nn.NewGELU("none")) }},
	"gelu_tanh":   {build: func(t *testing.T) nn.Layer { return must[*nn.GELU](t)(nn.NewGELU("tanh")) }},
	"stochastic_depth_row": {build: func(t *testing.T) nn.Layer {
		return must[*nn.StochasticDepth](t)(nn.NewStochasticDepth(0.5, "row"))
	}},
	"stochastic_depth_batch": {build: func(t *testing.T) nn.Layer {
		return must[*nn.StochasticDepth](t)(nn.NewStochasticDepth(0.3, "batch"))
	}, forwards: 3},
	"multihead_attention": {build: func(t *testing.T) nn.Layer {
		return must[*nn.MultiheadAttention](t)(nn.NewMultiheadAttention(8, 2, 0.2))
	}},
	"multihead_attention_eval": {build: func(t *testing.T) nn.Layer {
		return must[*nn.MultiheadAttention](t)(nn.NewMultiheadAttention(8, 4, 0))
	}, eval: true},
	"window_attention_shifted": {build: func(t *testing.T) nn.Layer {
		return must[*nn.ShiftedWindowAttention](t)(nn.NewShiftedWindowAttention(8, [2]int64{3, 3}, [2]int64{1, 1}, 2))
	}},
	"window_attention": {build: func(t *testing.T) nn.Layer {
		return must[*nn.ShiftedWindowAttention](t)(nn.NewShiftedWindowAttention(8, [2]int64{3, 3}, [2]int64{}, 4))
	}},
	"window_attention_one_side_shifted": {build: func(t *testing.T) nn.Layer {
		return must[*nn.ShiftedWindowAttention](t)(nn.NewShiftedWindowAttention(8, [2]int64{3, 3}, [2]int64{1, 1}, 2))
	}},
	"patch_merging": {build: func(t *testing.T) nn.Layer { return must[*nn.PatchMerging](t)(nn.NewPatchMerging(4, 1e-5)) }},
	"stochastic_depth_eval": {build: func(t *testing.T) nn.Layer {
		return must[*nn.StochasticDepth](t)(nn.NewStochasticDepth(0.5, "row"))
	}, eval: true},
}

func requireState(t *testing.T, want []namedRef, got []nn.Named[*torch.Tensor], what string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for i, w := range want {
		require.Equal(t, w.Name, got[i].Name, "%s: key order", what)
		testref.RequireClose(t, w.Value, got[i].Value, 1e-5, 1e-6, what+" "+w.Name)
	}
}

// TestModulesMatchPyTorch builds each module after the same seed as
// PyTorch: initial state (exactly), outputs, gradients, state after the
// forwards and every module's mode must agree.
func TestModulesMatchPyTorch(t *testing.T) {
	var f struct {
		Cases []moduleCase `json:"cases"`
	}
	testref.JSON(t, "nn_modules.py", &f)
	require.Len(t, f.Cases, len(moduleBuilders))
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) {
			b, ok := moduleBuilders[c.Name]
			require.True(t, ok, "no Go builder for %s", c.Name)
			s := torch.NewScope()
			defer s.Close()
			torch.ManualSeed(c.Seed)
			m := b.build(t)
			init := nn.StateDict(m)
			require.Len(t, init, len(c.Init))
			for i, w := range c.Init {
				require.Equal(t, w.Name, init[i].Name)
				testref.RequireEqual(t, w.Value, init[i].Value, "initial "+w.Name)
			}
			nn.Train(m, !b.eval)
			if b.setup != nil {
				b.setup(t, m)
			}
			x := must[*torch.Tensor](t)(torch.Randn(c.Input.Shape))
			testref.RequireEqual(t, c.Input, x, "input drawn after the same seed")
			require.NoError(t, x.SetRequiresGrad(true))
			for range max(b.forwards, 1) - 1 {
				_, err := m.Forward(x)
				require.NoError(t, err)
			}
			out, err := m.Forward(x)
			require.NoError(t, err)
			testref.RequireClose(t, c.Output, out, 1e-5, 1e-6, "output")
			loss := must[*torch.Tensor](t)(must[*torch.Tensor](t)(out.Mul(c.Cot.Torch(t))).Sum())
			require.NoError(t, loss.Backward())
			testref.RequireClose(t, c.InputGrad, must[*torch.Tensor](t)(x.Grad()), 1e-5, 1e-6, "input gradient")
			params := nn.NamedParameters(m)
			var grads []nn.Named[*torch.Tensor]
			for _, p := range params {
				if g := must[*torch.Tensor](t)(p.Value.Grad()); g != nil {
					grads = append(grads, nn.Named[*torch.Tensor]{Name: p.Name, Value: g})
				}
			}
			requireState(t, c.ParamGrads, grads, "gradient")
			requireState(t, c.After, nn.StateDict(m), "state after forward")
			var modes []string
			require.NoError(t, nn.Walk(m, func(path string, x nn.Module) error {
				modes = append(modes, path)
				for _, w := range c.Modes {
					if w.Name == path {
						require.Equal(t, w.Training, x.Base().Training(), "mode of %q", path)
					}
				}
				return nil
			}))
			require.Len(t, modes, len(c.Modes))
		})
	}
}
