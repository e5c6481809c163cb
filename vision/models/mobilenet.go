package models

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// InvertedResidual is a block of MobileNetV3 (torchvision's
// InvertedResidual) or EfficientNet (MBConv, FusedMBConv): its layers in
// "block", and, where the block keeps its input's shape, the input added
// to their output, after stochastic depth where the family has it.
type InvertedResidual struct {
	nn.ModuleBase
	Block    *nn.Sequential
	Residual bool
	// Drop is EfficientNet's stochastic depth, applied to the block's
	// output before the residual addition; nil for MobileNetV3.
	Drop nn.Layer
}

// Forward computes block(x), plus x for a residual block.
func (m *InvertedResidual) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	out, err := m.Block.Forward(x)
	if err != nil || !m.Residual {
		return out, err
	}
	if m.Drop != nil {
		if out, err = m.Drop.Forward(out); err != nil {
			return nil, err
		}
	}
	return out, out.Add_(x, 1)
}

// mobileBlock is a row of Tables 1 and 2 of the MobileNetV3 paper, as
// torchvision's InvertedResidualConfig at width multiplier 1.
type mobileBlock struct {
	in, kernel, expanded, out int64
	se, hardswish             bool
	stride                    int64
}

type mobileNetArch struct {
	blocks      []mobileBlock
	lastChannel int64
}

var mobileNets = map[string]mobileNetArch{
	"mobilenet_v3_large": {lastChannel: 1280, blocks: []mobileBlock{
		{16, 3, 16, 16, false, false, 1},
		{16, 3, 64, 24, false, false, 2},
		{24, 3, 72, 24, false, false, 1},
		{24, 5, 72, 40, true, false, 2},
		{40, 5, 120, 40, true, false, 1},
		{40, 5, 120, 40, true, false, 1},
		{40, 3, 240, 80, false, true, 2},
		{80, 3, 200, 80, false, true, 1},
		{80, 3, 184, 80, false, true, 1},
		{80, 3, 184, 80, false, true, 1},
		{80, 3, 480, 112, true, true, 1},
		{112, 3, 672, 112, true, true, 1},
		{112, 5, 672, 160, true, true, 2},
		{160, 5, 960, 160, true, true, 1},
		{160, 5, 960, 160, true, true, 1},
	}},
	"mobilenet_v3_small": {lastChannel: 1024, blocks: []mobileBlock{
		{16, 3, 16, 16, true, false, 2},
		{16, 3, 72, 24, false, false, 2},
		{24, 3, 88, 24, false, false, 1},
		{24, 5, 96, 40, true, true, 2},
		{40, 5, 240, 40, true, true, 1},
		{40, 5, 240, 40, true, true, 1},
		{40, 5, 120, 48, true, true, 1},
		{48, 5, 144, 48, true, true, 1},
		{48, 5, 288, 96, true, true, 2},
		{96, 5, 576, 96, true, true, 1},
		{96, 5, 576, 96, true, true, 1},
	}},
}

func init() {
	for name := range mobileNets {
		builders[name] = func(name string, numClasses int64) (Network, error) { return NewMobileNetV3(name, numClasses) }
	}
}

// NewMobileNetV3 builds mobilenet_v3_small or mobilenet_v3_large with a
// classifier of numClasses outputs, initialised as torchvision
// initialises it: with the same torch.ManualSeed the weights equal
// torchvision's.
//
// Its stages map to torchvision's features as follows: "stem" is
// features.0; a stage starts at each block with stride 2, so "stage1" to
// "stage5" are features.1, .2–3, .4–6, .7–12 and .13–15 for the large
// model, "stage1" to "stage4" features.1, .2–3, .4–8 and .9–11 for the
// small one; "lastconv" is the last 1×1 convolution (features.16, or
// features.12); "pool" is the average pool followed by the hidden Linear
// and Hardswish of torchvision's classifier (classifier.0 and .1), 1280
// wide (1024 for the small model). Forward applies the dropout
// (classifier.2) and the last Linear, classifier.3, the classifier that
// Classifier names. With numClasses 0 everything but classifier.3 is
// built: the hidden layer is part of what the ImageNet weights learnt, and
// a new head replaces only the last Linear, as in torchvision's recipe.
func NewMobileNetV3(name string, numClasses int64) (*Staged, error) {
	a, ok := mobileNets[name]
	if !ok {
		return nil, fmt.Errorf("models: unknown MobileNetV3 %q", name)
	}
	if err := checkNumClasses(name, numClasses); err != nil {
		return nil, err
	}
	s := torch.NewScope()
	defer s.Close()
	momentum := 0.01
	b := &netBuilder{bn: nn.BatchNormConfig{Eps: 0.001, Momentum: &momentum, Affine: true, TrackRunningStats: true}}
	m := &Staged{Arch: name, fcPrefix: "classifier.3.", featureDim: a.lastChannel}
	m.SetTraining(true)
	features := []nn.Layer{b.convNormAct(3, a.blocks[0].in, 3, 2, 1, nn.NewHardswish(true))}
	m.Stages = []Stage{{Name: "stem", Layers: features[:1:1]}}
	for _, c := range a.blocks {
		blk := b.mobileBlock(c)
		features = append(features, blk)
		if c.stride > 1 || len(m.Stages) == 1 {
			m.Stages = append(m.Stages, Stage{Name: fmt.Sprintf("stage%d", len(m.Stages))})
		}
		st := &m.Stages[len(m.Stages)-1]
		st.Layers = append(st.Layers, blk)
	}
	last := a.blocks[len(a.blocks)-1].out
	lastConv := b.convNormAct(last, 6*last, 1, 1, 1, nn.NewHardswish(true))
	m.Hidden = []nn.Layer{b.linear(6*last, a.lastChannel), nn.NewHardswish(true)}
	m.Dropout = b.dropout(0.2)
	b.finishFeatures(m, features, lastConv, append(m.Hidden[:2:2], m.Dropout), numClasses)
	return b.done(m, stagedInit{convStd: kaimingFanOut, zeroConvBias: true, linear: normal001})
}

// mobileBlock makes torchvision's InvertedResidual for c: an optional 1×1
// expansion, the depthwise convolution, an optional squeeze-excitation
// and the 1×1 projection.
func (b *netBuilder) mobileBlock(c mobileBlock) *InvertedResidual {
	act := func() nn.Layer {
		if c.hardswish {
			return nn.NewHardswish(true)
		}
		return nn.NewReLU(true)
	}
	var layers []nn.Layer
	if c.expanded != c.in {
		layers = append(layers, b.convNormAct(c.in, c.expanded, 1, 1, 1, act()))
	}
	layers = append(layers, b.convNormAct(c.expanded, c.expanded, c.kernel, c.stride, c.expanded, act()))
	if c.se {
		squeeze := makeDivisible(float64(c.expanded/4), 8, 0)
		layers = append(layers, b.squeezeExcitation(c.expanded, squeeze, nn.NewReLU(false), nn.NewHardsigmoid(false)))
	}
	layers = append(layers, b.convNormAct(c.expanded, c.out, 1, 1, 1, nil))
	return b.invertedResidual(layers, c.stride == 1 && c.in == c.out, nil)
}

// invertedResidual wraps layers as a block; drop, when not nil, is
// registered as its "stochastic_depth".
func (b *netBuilder) invertedResidual(layers []nn.Layer, residual bool, drop nn.Layer) *InvertedResidual {
	m := &InvertedResidual{Block: b.sequential(layers...), Residual: residual, Drop: drop}
	m.SetTraining(true)
	b.register(m, "block", m.Block)
	if drop != nil {
		b.register(m, "stochastic_depth", drop)
	}
	return m
}
