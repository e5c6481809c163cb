package models

import (
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// mbConv is a row of Table 1 of the EfficientNet paper or Table 4 of the
// EfficientNetV2 paper: a stage of layers blocks, torchvision's
// MBConvConfig (fused false) or FusedMBConvConfig.
type mbConv struct {
	fused                   bool
	expand                  float64
	kernel, stride, in, out int64
	layers                  int
}

var (
	efficientNetV1 = []mbConv{
		{false, 1, 3, 1, 32, 16, 1},
		{false, 6, 3, 2, 16, 24, 2},
		{false, 6, 5, 2, 24, 40, 2},
		{false, 6, 3, 2, 40, 80, 3},
		{false, 6, 5, 1, 80, 112, 3},
		{false, 6, 5, 2, 112, 192, 4},
		{false, 6, 3, 1, 192, 320, 1},
	}
	efficientNetV2S = []mbConv{
		{true, 1, 3, 1, 24, 24, 2},
		{true, 4, 3, 2, 24, 48, 4},
		{true, 4, 3, 2, 48, 64, 4},
		{false, 4, 3, 2, 64, 128, 6},
		{false, 6, 3, 1, 128, 160, 9},
		{false, 6, 3, 2, 160, 256, 15},
	}
	efficientNetV2M = []mbConv{
		{true, 1, 3, 1, 24, 24, 3},
		{true, 4, 3, 2, 24, 48, 5},
		{true, 4, 3, 2, 48, 80, 5},
		{false, 4, 3, 2, 80, 160, 7},
		{false, 6, 3, 1, 160, 176, 14},
		{false, 6, 3, 2, 176, 304, 18},
		{false, 6, 3, 1, 304, 512, 5},
	}
)

// efficientNetArch is what torchvision's builder passes for one model:
// the stages, V1's width and depth multipliers, the classifier's dropout,
// the BatchNorm eps and the width of the last convolution (0: four times
// the last stage's).
type efficientNetArch struct {
	stages       []mbConv
	width, depth float64
	dropout, eps float64
	lastChannel  int64
}

// stochasticDepth is torchvision's stochastic_depth_prob: block i of n
// (counted from 0 over all stages) drops with probability 0.2·i/n.
const stochasticDepth = 0.2

var efficientNets = map[string]efficientNetArch{
	"efficientnet_b0":   {efficientNetV1, 1.0, 1.0, 0.2, 1e-5, 0},
	"efficientnet_b1":   {efficientNetV1, 1.0, 1.1, 0.2, 1e-5, 0},
	"efficientnet_b2":   {efficientNetV1, 1.1, 1.2, 0.3, 1e-5, 0},
	"efficientnet_b3":   {efficientNetV1, 1.2, 1.4, 0.3, 1e-5, 0},
	"efficientnet_b4":   {efficientNetV1, 1.4, 1.8, 0.4, 1e-5, 0},
	"efficientnet_v2_s": {efficientNetV2S, 1, 1, 0.2, 1e-3, 1280},
	"efficientnet_v2_m": {efficientNetV2M, 1, 1, 0.3, 1e-3, 1280},
}

func init() {
	for name := range efficientNets {
		builders[name] = func(name string, numClasses int64) (Network, error) { return NewEfficientNet(name, numClasses) }
	}
}

// scaled applies V1's width and depth multipliers to a stage, as
// MBConvConfig does; FusedMBConvConfig (V2) has none.
func (a efficientNetArch) scaled(c mbConv) mbConv {
	if c.fused {
		return c
	}
	c.in = makeDivisible(float64(c.in)*a.width, 8, 0)
	c.out = makeDivisible(float64(c.out)*a.width, 8, 0)
	c.layers = int(math.Ceil(float64(c.layers) * a.depth))
	return c
}

// NewEfficientNet builds efficientnet_b0 to efficientnet_b4,
// efficientnet_v2_s or efficientnet_v2_m with a classifier of numClasses
// outputs, initialised as torchvision initialises it: with the same
// torch.ManualSeed the weights equal torchvision's.
//
// Its stages map to torchvision's features: "stem" is features.0,
// "stage1" to "stage7" (to "stage6" for efficientnet_v2_s) are
// features.1 to .7, one per row of the paper's table, "lastconv" is the
// last 1×1 convolution and "pool" the flattened average pool. Forward
// applies the dropout (classifier.0) and the Linear, classifier.1, that
// Classifier names; with numClasses 0 that Linear alone is not built.
// Stochastic depth grows linearly from 0 at the first block towards 0.2,
// as in torchvision.
func NewEfficientNet(name string, numClasses int64) (*Staged, error) {
	a, ok := efficientNets[name]
	if !ok {
		return nil, fmt.Errorf("models: unknown EfficientNet %q", name)
	}
	if err := checkNumClasses(name, numClasses); err != nil {
		return nil, err
	}
	s := torch.NewScope()
	defer s.Close()
	bn := nn.DefaultBatchNorm(0)
	bn.Eps = a.eps
	b := &netBuilder{bn: bn}
	m := &Staged{Arch: name, fcPrefix: "classifier.1."}
	m.SetTraining(true)
	stages := make([]mbConv, len(a.stages))
	total := 0
	for i, c := range a.stages {
		stages[i] = a.scaled(c)
		total += stages[i].layers
	}
	stem := b.convNormAct(3, stages[0].in, 3, 2, 1, nn.NewSiLU(true))
	features := []nn.Layer{stem}
	m.Stages = []Stage{{Name: "stem", Layers: []nn.Layer{stem}}}
	id := 0
	for i, c := range stages {
		stage := nn.NewSequential()
		for j := range c.layers {
			if j > 0 {
				c.in, c.stride = c.out, 1
			}
			p := stochasticDepth * float64(id) / float64(total)
			stage.Append(b.mbConv(c, p))
			id++
		}
		features = append(features, stage)
		m.Stages = append(m.Stages, Stage{Name: fmt.Sprintf("stage%d", i+1), Layers: []nn.Layer{stage}})
	}
	last := stages[len(stages)-1].out
	m.featureDim = a.lastChannel
	if m.featureDim == 0 {
		m.featureDim = 4 * last
	}
	lastConv := b.convNormAct(last, m.featureDim, 1, 1, 1, nn.NewSiLU(true))
	m.Dropout = b.dropout(a.dropout)
	b.finishFeatures(m, features, lastConv, []nn.Layer{m.Dropout}, numClasses)
	return b.done(m, stagedInit{convStd: kaimingFanOut, zeroConvBias: true, linear: uniformFanOut})
}

// mbConv makes torchvision's MBConv (an optional 1×1 expansion, the
// depthwise convolution, a squeeze-excitation, the 1×1 projection) or
// FusedMBConv (one full convolution, expanding, then a 1×1 projection
// where it expands), with stochastic depth p.
func (b *netBuilder) mbConv(c mbConv, p float64) *InvertedResidual {
	expanded := makeDivisible(float64(c.in)*c.expand, 8, 0)
	var layers []nn.Layer
	switch {
	case c.fused && expanded != c.in:
		layers = append(layers,
			b.convNormAct(c.in, expanded, c.kernel, c.stride, 1, nn.NewSiLU(true)),
			b.convNormAct(expanded, c.out, 1, 1, 1, nil))
	case c.fused:
		layers = append(layers, b.convNormAct(c.in, c.out, c.kernel, c.stride, 1, nn.NewSiLU(true)))
	default:
		if expanded != c.in {
			layers = append(layers, b.convNormAct(c.in, expanded, 1, 1, 1, nn.NewSiLU(true)))
		}
		layers = append(layers,
			b.convNormAct(expanded, expanded, c.kernel, c.stride, expanded, nn.NewSiLU(true)),
			b.squeezeExcitation(expanded, max(1, c.in/4), nn.NewSiLU(true), nn.NewSigmoid()),
			b.convNormAct(expanded, c.out, 1, 1, 1, nil))
	}
	var drop *nn.StochasticDepth
	if b.err == nil {
		drop, b.err = nn.NewStochasticDepth(p, "row")
	}
	return b.invertedResidual(layers, c.stride == 1 && c.in == c.out, drop)
}
