package models

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// swinArch is a Swin transformer (v1) as torchvision 0.14 builds it: the
// width of its first stage (doubling at each), the depths and heads of
// its four stages, its window side, and the stochastic depth probability
// of its last block (earlier blocks drop less, linearly).
type swinArch struct {
	embed      int64
	depths     [4]int
	heads      [4]int64
	window     int64
	depthDecay float64
}

var swins = map[string]swinArch{
	"swin_t": {embed: 96, depths: [4]int{2, 2, 6, 2}, heads: [4]int64{3, 6, 12, 24}, window: 7, depthDecay: 0.2},
}

func init() { registerFamily(swins, NewSwin) }

// Swin is torchvision's SwinTransformer (v1), with the same module tree,
// state-dict keys and initialisation. It takes images of any size: each
// stage pads its map to whole windows (the published weights were trained
// at 224×224).
//
// Its stages are "stem", the 4×4 patch projection and its LayerNorm;
// "stage1" to "stage4", each a channels-last (N, H, W, C) map, "stage2" to
// "stage4" beginning with the patch merging that torchvision keeps as a
// separate module after the previous stage; and "pool", the final
// LayerNorm, the average pool and the flattening: the features the head
// sees.
type Swin struct {
	nn.ModuleBase
	Name       string
	NumClasses int64
	// Body is torchvision's "features": the stem, then each stage's blocks
	// followed, but for the last, by a patch merging.
	Body *nn.Sequential
	Norm *nn.LayerNorm
	// Head is the Linear "head", nil when built without classes.
	Head    *nn.Linear
	permute *nn.Permute
	avgPool *nn.AdaptiveAvgPool2d
	flatten *nn.Flatten
	dim     int64
}

var _ Network = (*Swin)(nil)

// NewSwin builds the Swin transformer called name ("swin_t") with a head
// of numClasses outputs, initialised as torchvision initialises it: with
// the same torch.ManualSeed the weights equal torchvision's. Its
// stochastic depth is torchvision's default, active in training mode.
// With numClasses 0 it has no head and Forward is not available; the
// final LayerNorm ("norm") stays, part of the "pool" features.
func NewSwin(name string, numClasses int64) (*Swin, error) {
	a, err := lookup(swins, name, numClasses)
	if err != nil {
		return nil, err
	}
	s := torch.NewScope()
	defer s.Close()
	mk := &maker{}
	m := &Swin{Name: name, NumClasses: numClasses, dim: a.embed * 8}
	m.SetTraining(true)
	m.Body = nn.NewSequential(nn.NewSequential(
		mk.conv(nn.Conv2dConfig{InChannels: 3, OutChannels: a.embed, Kernel: [2]int64{4, 4}, Stride: [2]int64{4, 4}, Bias: true}),
		nn.NewPermute(0, 2, 3, 1),
		mk.layerNorm(a.embed, 1e-5),
	))
	total := a.depths[0] + a.depths[1] + a.depths[2] + a.depths[3]
	id := 0
	window := [2]int64{a.window, a.window}
	for i, depth := range a.depths {
		dim := a.embed << i
		blocks := nn.NewSequential()
		for j := range depth {
			var shift [2]int64
			if j%2 == 1 {
				shift = [2]int64{a.window / 2, a.window / 2}
			}
			blocks.Append(newSwinBlock(mk, dim, a.heads[i], window, shift, a.depthDecay*float64(id)/(float64(total)-1)))
			id++
		}
		m.Body.Append(blocks)
		if i < len(a.depths)-1 {
			merge, err := nn.NewPatchMerging(dim, 1e-5)
			mk.fail(err)
			m.Body.Append(merge)
		}
	}
	m.Norm = mk.layerNorm(m.dim, 1e-5)
	m.permute = nn.NewPermute(0, 3, 1, 2)
	m.avgPool = nn.NewAdaptiveAvgPool2d(1, 1)
	m.flatten = nn.NewFlatten()
	children := []nn.Named[nn.Module]{child("features", m.Body), child("norm", m.Norm), child("permute", m.permute),
		child("avgpool", m.avgPool), child("flatten", m.flatten)}
	if numClasses > 0 {
		m.Head = mk.linear(m.dim, numClasses)
		children = append(children, child("head", m.Head))
	}
	mk.register(m, children...)
	if mk.err != nil {
		return nil, fmt.Errorf("models: %s: %w", name, mk.err)
	}
	if err := initTruncNormal(m, 0.02, isLinear); err != nil {
		return nil, fmt.Errorf("models: %s: init: %w", name, err)
	}
	return m, nil
}

// SwinBlock is a Swin transformer block on a (N, H, W, C) map:
// x + drop(attn(norm1(x))), then that plus drop(mlp(norm2(·))), the
// attention within (shifted) windows and both branches dropped by the
// same stochastic depth.
type SwinBlock struct {
	nn.ModuleBase
	Norm1, Norm2 *nn.LayerNorm
	Attention    *nn.ShiftedWindowAttention
	Depth        *nn.StochasticDepth
	MLP          *nn.Sequential
}

func newSwinBlock(mk *maker, dim, heads int64, window, shift [2]int64, dropProb float64) *SwinBlock {
	b := &SwinBlock{}
	b.SetTraining(true)
	b.Norm1 = mk.layerNorm(dim, 1e-5)
	var err error
	b.Attention, err = nn.NewShiftedWindowAttention(dim, window, shift, heads)
	mk.fail(err)
	b.Depth = mk.depth(dropProb)
	b.Norm2 = mk.layerNorm(dim, 1e-5)
	b.MLP = mk.mlp(dim, 4*dim)
	mk.register(b, child("norm1", b.Norm1), child("attn", b.Attention), child("stochastic_depth", b.Depth),
		child("norm2", b.Norm2), child("mlp", b.MLP))
	return b
}

// Forward runs the block on x (N, H, W, C).
func (b *SwinBlock) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	for _, branch := range [][2]nn.Layer{{b.Norm1, b.Attention}, {b.Norm2, b.MLP}} {
		h, err := branch[0].Forward(x)
		if err != nil {
			return nil, err
		}
		if h, err = branch[1].Forward(h); err != nil {
			return nil, err
		}
		if h, err = b.Depth.Forward(h); err != nil {
			return nil, err
		}
		if x, err = x.Add(h); err != nil {
			return nil, err
		}
	}
	return x, nil
}

func (m *Swin) stages() []stage {
	return pyramidStages(m.Body, m.Norm, m.permute, m.avgPool, m.flatten)
}

// ArchName returns the architecture's name.
func (m *Swin) ArchName() string { return m.Name }

// StageNames returns "stem", "stage1"…"stage4" and "pool".
func (m *Swin) StageNames() []string { return stageNames(m.stages()) }

// FeatureDim returns the width of the last stage: 768 for swin_t.
func (m *Swin) FeatureDim() int64 { return m.dim }

// Classifier returns "head." and whether the head was built.
func (m *Swin) Classifier() (string, bool) { return "head.", m.Head != nil }

// Features runs the network up to the last of the named stages (see
// Swin) and returns the output of each requested one.
func (m *Swin) Features(x *torch.Tensor, stages ...string) (map[string]*torch.Tensor, error) {
	return runStages(m.Name, x, m.stages(), stages)
}

// Forward returns the logits for images x (N, 3, H, W).
func (m *Swin) Forward(x *torch.Tensor) (*torch.Tensor, error) { return classify(m, x, m.Head) }
