package models

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// convnextArch is a member of the ConvNeXt family as torchvision 0.14
// builds it: the widths and depths of its four stages, and the stochastic
// depth probability of its last block (earlier blocks drop less, linearly).
type convnextArch struct {
	dims       [4]int64
	depths     [4]int
	depthDecay float64
}

var convnexts = map[string]convnextArch{
	"convnext_tiny":  {dims: [4]int64{96, 192, 384, 768}, depths: [4]int{3, 3, 9, 3}, depthDecay: 0.1},
	"convnext_small": {dims: [4]int64{96, 192, 384, 768}, depths: [4]int{3, 3, 27, 3}, depthDecay: 0.4},
	"convnext_base":  {dims: [4]int64{128, 256, 512, 1024}, depths: [4]int{3, 3, 27, 3}, depthDecay: 0.5},
}

func init() { registerFamily(convnexts, NewConvNeXt) }

// ConvNeXt is torchvision's ConvNeXt, with the same module tree,
// state-dict keys and initialisation.
//
// Its stages are "stem", the 4×4 patchify convolution and its norm;
// "stage1" to "stage4", each (N, C, H, W), "stage2" to "stage4" beginning
// with the downsampling (norm, 2×2 convolution) that torchvision keeps as
// a separate module before each; and "pool", the average pool, the
// classifier's LayerNorm and the flattening: the features its Linear sees.
type ConvNeXt struct {
	nn.ModuleBase
	Name       string
	NumClasses int64
	// Body is torchvision's "features": the stem, then each stage's blocks
	// preceded, from the second stage on, by its downsampling.
	Body    *nn.Sequential
	AvgPool *nn.AdaptiveAvgPool2d
	// Head is torchvision's "classifier": LayerNorm2d, Flatten and, when
	// built with classes, the Linear FC ("classifier.2").
	Head    *nn.Sequential
	FC      *nn.Linear
	norm    *nn.LayerNorm2d
	flatten *nn.Flatten
	dim     int64
}

var _ Network = (*ConvNeXt)(nil)

// NewConvNeXt builds the ConvNeXt called name ("convnext_tiny",
// "convnext_small", "convnext_base") with a classifier of numClasses
// outputs, initialised as torchvision initialises it: with the same
// torch.ManualSeed the weights equal torchvision's. Its stochastic depth
// is torchvision's default for the architecture, active in training mode.
// With numClasses 0 the classifier keeps its LayerNorm (part of the
// features "pool" returns, and loaded from published weights) and has no
// Linear: FC is nil and Forward is not available.
func NewConvNeXt(name string, numClasses int64) (*ConvNeXt, error) {
	a, err := lookup(convnexts, name, numClasses)
	if err != nil {
		return nil, err
	}
	s := torch.NewScope()
	defer s.Close()
	mk := &maker{}
	m := &ConvNeXt{Name: name, NumClasses: numClasses, dim: a.dims[3]}
	m.SetTraining(true)
	m.Body = nn.NewSequential(nn.NewSequential(
		mk.conv(nn.Conv2dConfig{InChannels: 3, OutChannels: a.dims[0], Kernel: [2]int64{4, 4}, Stride: [2]int64{4, 4}, Bias: true}),
		mk.layerNorm2d(a.dims[0]),
	))
	total := a.depths[0] + a.depths[1] + a.depths[2] + a.depths[3]
	id := 0
	for i, dim := range a.dims {
		if i > 0 {
			m.Body.Append(nn.NewSequential(
				mk.layerNorm2d(a.dims[i-1]),
				mk.conv(nn.Conv2dConfig{InChannels: a.dims[i-1], OutChannels: dim, Kernel: [2]int64{2, 2}, Stride: [2]int64{2, 2}, Bias: true}),
			))
		}
		blocks := nn.NewSequential()
		for range a.depths[i] {
			blocks.Append(newCNBlock(mk, dim, a.depthDecay*float64(id)/(float64(total)-1)))
			id++
		}
		m.Body.Append(blocks)
	}
	m.AvgPool = nn.NewAdaptiveAvgPool2d(1, 1)
	m.norm, m.flatten = mk.layerNorm2d(a.dims[3]), nn.NewFlatten()
	m.Head = nn.NewSequential(m.norm, m.flatten)
	if numClasses > 0 {
		m.FC = mk.linear(a.dims[3], numClasses)
		m.Head.Append(m.FC)
	}
	mk.register(m, child("features", m.Body), child("avgpool", m.AvgPool), child("classifier", m.Head))
	if mk.err != nil {
		return nil, fmt.Errorf("models: %s: %w", name, mk.err)
	}
	if err := initTruncNormal(m, 0.02, isConvOrLinear); err != nil {
		return nil, fmt.Errorf("models: %s: init: %w", name, err)
	}
	return m, nil
}

// CNBlock is ConvNeXt's block: a 7×7 depthwise convolution, LayerNorm and
// an inverted MLP (×4, GELU) on channels-last pixels, scaled per channel
// by "layer_scale" (initially 1e-6), dropped by stochastic depth in
// training, and added to its input.
type CNBlock struct {
	nn.ModuleBase
	Block *nn.Sequential
	Depth *nn.StochasticDepth
}

func newCNBlock(mk *maker, dim int64, dropProb float64) *CNBlock {
	b := &CNBlock{}
	b.SetTraining(true)
	b.Block = nn.NewSequential(
		mk.conv(nn.Conv2dConfig{InChannels: dim, OutChannels: dim, Kernel: [2]int64{7, 7}, Padding: [2]int64{3, 3}, Groups: dim, Bias: true}),
		nn.NewPermute(0, 2, 3, 1),
		mk.layerNorm(dim, 1e-6),
		mk.linear(dim, 4*dim),
		mk.gelu(),
		mk.linear(4*dim, dim),
		nn.NewPermute(0, 3, 1, 2),
	)
	scale, err := torch.Full([]int64{dim, 1, 1}, 1e-6)
	mk.param(b, "layer_scale", scale, err)
	b.Depth = mk.depth(dropProb)
	mk.register(b, child("block", b.Block), child("stochastic_depth", b.Depth))
	return b
}

// Forward returns x + drop(layer_scale · block(x)).
func (b *CNBlock) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	h, err := b.Block.Forward(x)
	if err != nil {
		return nil, err
	}
	if h, err = b.Parameter("layer_scale").Mul(h); err != nil {
		return nil, err
	}
	if h, err = b.Depth.Forward(h); err != nil {
		return nil, err
	}
	return h, h.Add_(x, 1)
}

func (m *ConvNeXt) stages() []stage {
	return pyramidStages(m.Body, m.AvgPool, m.norm, m.flatten)
}

// ArchName returns the architecture's name.
func (m *ConvNeXt) ArchName() string { return m.Name }

// StageNames returns "stem", "stage1"…"stage4" and "pool".
func (m *ConvNeXt) StageNames() []string { return stageNames(m.stages()) }

// FeatureDim returns the width of the last stage: 768 for convnext_tiny
// and convnext_small, 1024 for convnext_base.
func (m *ConvNeXt) FeatureDim() int64 { return m.dim }

// Classifier returns "classifier.2.", the Linear alone: the classifier's
// LayerNorm belongs to the features.
func (m *ConvNeXt) Classifier() (string, bool) { return "classifier.2.", m.FC != nil }

// Features runs the network up to the last of the named stages (see
// ConvNeXt) and returns the output of each requested one.
func (m *ConvNeXt) Features(x *torch.Tensor, stages ...string) (map[string]*torch.Tensor, error) {
	return runStages(m.Name, x, m.stages(), stages)
}

// Forward returns the logits for images x (N, 3, H, W), H and W at least
// 32.
func (m *ConvNeXt) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return classify(m, x, m.FC)
}

// classify is Forward of a network whose classifier is a Linear on the
// "pool" features.
func classify(m Network, x *torch.Tensor, fc *nn.Linear) (*torch.Tensor, error) {
	if fc == nil {
		return nil, fmt.Errorf("models: %s was built without a classifier: use Features", m.ArchName())
	}
	f, err := m.Features(x, "pool")
	if err != nil {
		return nil, err
	}
	return fc.Forward(f["pool"])
}
