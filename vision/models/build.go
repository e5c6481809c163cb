package models

import (
	"fmt"
	"slices"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// registerFamily makes Build build every architecture of a family with build.
func registerFamily[A any, N Network](family map[string]A, build func(name string, numClasses int64) (N, error)) {
	for name := range family {
		builders[name] = func(name string, numClasses int64) (Network, error) { return build(name, numClasses) }
	}
}

// lookup returns the architecture called name in family, checking
// numClasses on the way.
func lookup[A any](family map[string]A, name string, numClasses int64) (A, error) {
	a, ok := family[name]
	if !ok {
		return a, fmt.Errorf("models: unknown architecture %q (known: %v)", name, Networks())
	}
	if numClasses < 0 {
		return a, fmt.Errorf("models: %s: num_classes must be positive, got %d", name, numClasses)
	}
	return a, nil
}

// maker makes layers in a network's construction order, which is the
// order of random draws, and keeps the first error, so that a builder
// reads as torchvision's __init__ and checks once at the end.
type maker struct{ err error }

// fail records err as mk's first error.
func (mk *maker) fail(err error) {
	if mk.err == nil {
		mk.err = err
	}
}

func (mk *maker) conv(c nn.Conv2dConfig) *nn.Conv2d {
	m, err := nn.NewConv2d(c)
	mk.fail(err)
	return m
}

func (mk *maker) linear(in, out int64) *nn.Linear {
	m, err := nn.NewLinear(in, out, true)
	mk.fail(err)
	return m
}

func (mk *maker) layerNorm(n int64, eps float64) *nn.LayerNorm {
	m, err := nn.NewLayerNorm([]int64{n}, eps, true)
	mk.fail(err)
	return m
}

func (mk *maker) layerNorm2d(n int64) *nn.LayerNorm2d {
	m, err := nn.NewLayerNorm2d(n, 1e-6)
	mk.fail(err)
	return m
}

func (mk *maker) gelu() *nn.GELU {
	m, err := nn.NewGELU("none")
	mk.fail(err)
	return m
}

func (mk *maker) depth(p float64) *nn.StochasticDepth {
	m, err := nn.NewStochasticDepth(p, "row")
	mk.fail(err)
	return m
}

func (mk *maker) dropout(p float64) *nn.Dropout {
	m, err := nn.NewDropout(p)
	mk.fail(err)
	return m
}

// param registers t, made by a factory that returned err, as m's
// parameter name.
func (mk *maker) param(m nn.Module, name string, t *torch.Tensor, err error) {
	mk.fail(err)
	if mk.err == nil {
		mk.err = m.Base().RegisterParameter(name, t)
	}
}

// register adds children to m in order.
func (mk *maker) register(m nn.Module, children ...nn.Named[nn.Module]) {
	for _, c := range children {
		if mk.err != nil {
			return
		}
		mk.err = m.Base().RegisterModule(c.Name, c.Value)
	}
}

// child pairs a module with its name, for register.
func child(name string, m nn.Module) nn.Named[nn.Module] {
	return nn.Named[nn.Module]{Name: name, Value: m}
}

// stage is a named step of a network's feature hierarchy: run takes the
// previous stage's output to this one's.
type stage struct {
	name string
	run  func(*torch.Tensor) (*torch.Tensor, error)
}

func stageNames(stages []stage) []string {
	names := make([]string, len(stages))
	for i, s := range stages {
		names[i] = s.name
	}
	return names
}

// pyramidStages are the stages of a four-stage network whose body is
// torchvision's "features" of ConvNeXt and Swin: the stem, the first
// stage's blocks, then for each later stage the downsampling module that
// precedes it and its blocks; pool makes the pooled features of the last.
func pyramidStages(body *nn.Sequential, pool ...nn.Layer) []stage {
	mods := body.Children()
	layer := func(i int) nn.Layer { return mods[i].Value.(nn.Layer) }
	return []stage{
		{"stem", layer(0).Forward},
		{"stage1", layer(1).Forward},
		{"stage2", nn.NewSequential(layer(2), layer(3)).Forward},
		{"stage3", nn.NewSequential(layer(4), layer(5)).Forward},
		{"stage4", nn.NewSequential(layer(6), layer(7)).Forward},
		{"pool", nn.NewSequential(pool...).Forward},
	}
}

// runStages runs stages in order up to the last of want and returns the
// output of each stage in want.
func runStages(arch string, x *torch.Tensor, stages []stage, want []string) (map[string]*torch.Tensor, error) {
	names := stageNames(stages)
	last := -1
	for _, w := range want {
		i := slices.Index(names, w)
		if i < 0 {
			return nil, fmt.Errorf("models: %s: unknown stage %q (known: %v)", arch, w, names)
		}
		last = max(last, i)
	}
	out := make(map[string]*torch.Tensor, len(want))
	h := x
	for _, s := range stages[:last+1] {
		var err error
		if h, err = s.run(h); err != nil {
			return nil, fmt.Errorf("models: %s: %s: %w", arch, s.name, err)
		}
		if slices.Contains(want, s.name) {
			out[s.name] = h
		}
	}
	return out, nil
}

// initTruncNormal re-draws, in module order, the weight of every module
// under m that match selects (convolutions, linear layers) from a normal
// distribution of std truncated to [-2, 2] and zeroes its bias: the loop
// over self.modules() that ends ConvNeXt's and Swin's constructors.
func initTruncNormal(m nn.Module, std float64, match func(nn.Module) bool) error {
	return nn.Walk(m, func(_ string, x nn.Module) error {
		if !match(x) {
			return nil
		}
		if err := nn.TruncNormal_(x.Base().Parameter("weight"), 0, std, -2, 2); err != nil {
			return err
		}
		if b := x.Base().Parameter("bias"); b != nil {
			return torch.NoGrad(b.Zero_)
		}
		return nil
	})
}

func isLinear(m nn.Module) bool { _, ok := m.(*nn.Linear); return ok }

func isConvOrLinear(m nn.Module) bool {
	_, ok := m.(*nn.Conv2d)
	return ok || isLinear(m)
}

// mlp is torchvision's MLP as transformer blocks use it: Linear to
// hidden, GELU, Dropout, Linear back, Dropout (no dropout here), its
// Linears re-drawn as MLPBlock and SwinTransformerBlock do after making
// them: Xavier-uniform weights, biases from a normal of std 1e-6.
func (mk *maker) mlp(dim, hidden int64) *nn.Sequential {
	fc1, act, drop1, fc2, drop2 := mk.linear(dim, hidden), mk.gelu(), mk.dropout(0), mk.linear(hidden, dim), mk.dropout(0)
	if mk.err != nil {
		return nil
	}
	mk.err = torch.NoGrad(func() error {
		for _, l := range []*nn.Linear{fc1, fc2} {
			if err := nn.XavierUniform_(l.Parameter("weight")); err != nil {
				return err
			}
			if err := l.Parameter("bias").Normal_(0, 1e-6, nil); err != nil {
				return err
			}
		}
		return nil
	})
	return nn.NewSequential(fc1, act, drop1, fc2, drop2)
}
