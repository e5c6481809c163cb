package models

import (
	"fmt"
	"math"
	"slices"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// Staged is a convolutional network that runs named stages in turn, then
// a global average pool, then its classifier: the shape MobileNetV3,
// EfficientNet and RegNet share. Its module tree, state-dict keys and
// initialisation are torchvision's; Stages only names its parts.
//
// Every convolution followed by a BatchNorm is a ConvNormAct (ConvBN
// returns the pair), and every BatchNorm is an nn.BatchNorm, so nn.Walk
// finds what a BatchNorm policy or folding acts on.
type Staged struct {
	nn.ModuleBase
	Arch string
	// Stages are the named stages before the pool, in order.
	Stages []Stage
	Pool   *nn.AdaptiveAvgPool2d
	// Hidden runs between the pool and the dropout (MobileNetV3's hidden
	// Linear and Hardswish, torchvision's classifier.0 and .1); empty for
	// the others.
	Hidden []nn.Layer
	// Dropout precedes the classifier; nil for RegNet, which has none.
	Dropout *nn.Dropout
	// FC is the classifier, the last Linear; nil when built without one.
	FC         *nn.Linear
	fcPrefix   string
	featureDim int64
}

// Stage is a named part of a Staged network and the layers it runs.
type Stage struct {
	Name   string
	Layers []nn.Layer
}

var _ Network = (*Staged)(nil)

// ArchName returns the architecture's name.
func (m *Staged) ArchName() string { return m.Arch }

// StageNames returns the names of the stages, then "pool".
func (m *Staged) StageNames() []string {
	names := make([]string, 0, len(m.Stages)+1)
	for _, s := range m.Stages {
		names = append(names, s.Name)
	}
	return append(names, "pool")
}

// StageLayers returns the layers the named stage runs: for "pool", the
// pool and Hidden. The stages partition the network's modules but the
// classifier's dropout and last Linear, so freezing a backbone up to a
// stage is freezing the layers of that stage and of those before it.
func (m *Staged) StageLayers(name string) ([]nn.Layer, error) {
	if name == "pool" {
		return append([]nn.Layer{m.Pool}, m.Hidden...), nil
	}
	for _, s := range m.Stages {
		if s.Name == name {
			return s.Layers, nil
		}
	}
	return nil, fmt.Errorf("models: %s: unknown stage %q (known: %v)", m.Arch, name, m.StageNames())
}

// Classifier returns the state-dict prefix of the last Linear, the one a
// new number of classes replaces, and whether it was built.
func (m *Staged) Classifier() (string, bool) { return m.fcPrefix, m.FC != nil }

// FeatureDim returns the width of the "pool" features.
func (m *Staged) FeatureDim() int64 { return m.featureDim }

// Forward returns the logits for images x (N, 3, H, W).
func (m *Staged) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	if m.FC == nil {
		return nil, fmt.Errorf("models: %s was built without a classifier: use Features", m.Arch)
	}
	f, err := m.Features(x, "pool")
	if err != nil {
		return nil, err
	}
	h := f["pool"]
	if m.Dropout != nil {
		if h, err = m.Dropout.Forward(h); err != nil {
			return nil, err
		}
	}
	return m.FC.Forward(h)
}

// Features runs the network up to the last of the named stages (see
// StageNames; "pool" is the flattened average pool, after Hidden) and
// returns the output of each requested one.
func (m *Staged) Features(x *torch.Tensor, stages ...string) (map[string]*torch.Tensor, error) {
	names := m.StageNames()
	want := map[string]bool{}
	last := -1
	for _, s := range stages {
		i := slices.Index(names, s)
		if i < 0 {
			return nil, fmt.Errorf("models: %s: unknown stage %q (known: %v)", m.Arch, s, names)
		}
		want[s] = true
		last = max(last, i)
	}
	out := map[string]*torch.Tensor{}
	h := x
	var err error
	for i := 0; i <= last; i++ {
		layers := m.Hidden
		if i < len(m.Stages) {
			layers = m.Stages[i].Layers
		} else {
			if h, err = m.Pool.Forward(h); err != nil {
				return nil, err
			}
			if h, err = h.Flatten(1, -1); err != nil {
				return nil, err
			}
		}
		for _, l := range layers {
			if h, err = l.Forward(h); err != nil {
				return nil, fmt.Errorf("models: %s: %s: %w", m.Arch, names[i], err)
			}
		}
		if want[names[i]] {
			out[names[i]] = h
		}
	}
	return out, nil
}

// checkNumClasses refuses a negative number of classes for arch.
func checkNumClasses(arch string, n int64) error {
	if n < 0 {
		return fmt.Errorf("models: %s: num_classes must be positive, got %d", arch, n)
	}
	return nil
}

// finishFeatures is the end MobileNetV3 and EfficientNet share: lastConv
// as the stage "lastconv" and the last of torchvision's features, the
// average pool, and the classifier, which is head followed by the last
// Linear (FC, from the pooled features) when numClasses > 0.
func (b *netBuilder) finishFeatures(m *Staged, features []nn.Layer, lastConv *ConvNormAct, head []nn.Layer, numClasses int64) {
	features = append(features, lastConv)
	m.Stages = append(m.Stages, Stage{Name: "lastconv", Layers: []nn.Layer{lastConv}})
	m.Pool = nn.NewAdaptiveAvgPool2d(1, 1)
	if numClasses > 0 {
		m.FC = b.linear(m.featureDim, numClasses)
		head = append(head, m.FC)
	}
	b.register(m, "features", b.sequential(features...))
	b.register(m, "avgpool", m.Pool)
	b.register(m, "classifier", b.sequential(head...))
}

// done returns m after init, or the builder's first error.
func (b *netBuilder) done(m *Staged, init stagedInit) (*Staged, error) {
	if b.err != nil {
		return nil, fmt.Errorf("models: %s: %w", m.Arch, b.err)
	}
	if err := init.apply(m); err != nil {
		return nil, fmt.Errorf("models: %s: init: %w", m.Arch, err)
	}
	return m, nil
}

// stagedInit is a family's initialisation loop over its modules, after
// the constructors' own: the standard deviation of a convolution's normal
// weights from its fan-out, whether convolution biases are zeroed, and
// the draw of a Linear's weight (its bias is zeroed). BatchNorm layers
// start at weight 1 and bias 0 already.
type stagedInit struct {
	convStd      func(fanOut int64) float64
	zeroConvBias bool
	linear       func(w *torch.Tensor, out int64) error
}

// kaimingFanOut is torch.nn.init.kaiming_normal_(mode="fan_out")'s
// standard deviation.
func kaimingFanOut(fan int64) float64 { return nn.KaimingNormalStd(fan) }

// normal001 draws a Linear's weight from N(0, 0.01²).
func normal001(w *torch.Tensor, _ int64) error { return w.Normal_(0, 0.01, nil) }

// apply re-draws m's parameters in module order, torchvision's loop over
// self.modules().
func (in stagedInit) apply(m nn.Module) error {
	return torch.NoGrad(func() error {
		return nn.Walk(m, func(_ string, x nn.Module) error {
			switch x := x.(type) {
			case *nn.Conv2d:
				k := x.Config
				if err := x.Parameter("weight").Normal_(0, in.convStd(k.OutChannels*k.Kernel[0]*k.Kernel[1]), nil); err != nil {
					return err
				}
				if b := x.Parameter("bias"); b != nil && in.zeroConvBias {
					return b.Zero_()
				}
			case *nn.Linear:
				if err := in.linear(x.Parameter("weight"), x.Out); err != nil {
					return err
				}
				return x.Parameter("bias").Zero_()
			}
			return nil
		})
	})
}

// uniformFanOut draws EfficientNet's Linear weight from U(−1/√out, 1/√out).
func uniformFanOut(w *torch.Tensor, out int64) error {
	r := 1 / math.Sqrt(float64(out))
	return w.Uniform_(-r, r, nil)
}
