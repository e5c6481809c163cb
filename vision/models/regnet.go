package models

import (
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// regNetArch is a RegNetY's per-stage parameters: torchvision's
// BlockParams.from_init_params(depth, w_0, w_a, w_m, group_width,
// se_ratio=0.25), which quantises its widths with float32 tensor
// arithmetic; these are its results.
type regNetArch struct {
	depths     [4]int
	widths     [4]int64
	groupWidth int64
}

var regNets = map[string]regNetArch{
	"regnet_y_400mf": {[4]int{1, 3, 6, 6}, [4]int64{48, 104, 208, 440}, 8},
	"regnet_y_800mf": {[4]int{1, 3, 8, 2}, [4]int64{64, 144, 320, 784}, 16},
	"regnet_y_1_6gf": {[4]int{2, 6, 17, 2}, [4]int64{48, 120, 336, 888}, 24},
	"regnet_y_3_2gf": {[4]int{2, 5, 13, 1}, [4]int64{72, 216, 576, 1512}, 24},
	"regnet_y_8gf":   {[4]int{2, 4, 10, 1}, [4]int64{224, 448, 896, 2016}, 56},
	"regnet_y_16gf":  {[4]int{2, 4, 11, 1}, [4]int64{224, 448, 1232, 3024}, 112},
}

func init() {
	for name := range regNets {
		builders[name] = func(name string, numClasses int64) (Network, error) { return NewRegNetY(name, numClasses) }
	}
}

// NewRegNetY builds one of torchvision's RegNetY models (regnet_y_400mf
// to regnet_y_16gf) with a classifier of numClasses outputs (none for 0),
// initialised as torchvision initialises it: with the same
// torch.ManualSeed the weights equal torchvision's.
//
// Its stages are "stem" (torchvision's stem), "stage1" to "stage4"
// (trunk_output.block1 to block4) and "pool", the flattened average pool
// the classifier, "fc", sees.
func NewRegNetY(name string, numClasses int64) (*Staged, error) {
	a, ok := regNets[name]
	if !ok {
		return nil, fmt.Errorf("models: unknown RegNetY %q", name)
	}
	if err := checkNumClasses(name, numClasses); err != nil {
		return nil, err
	}
	s := torch.NewScope()
	defer s.Close()
	b := &netBuilder{bn: nn.DefaultBatchNorm(0)}
	m := &Staged{Arch: name, fcPrefix: "fc.", featureDim: a.widths[3]}
	m.SetTraining(true)
	const stemWidth = 32
	stem := b.convNormAct(3, stemWidth, 3, 2, 1, nn.NewReLU(true))
	m.Stages = []Stage{{Name: "stem", Layers: []nn.Layer{stem}}}
	trunk := nn.NewSequential()
	in := int64(stemWidth)
	for i, depth := range a.depths {
		stage := nn.NewSequential()
		for j := range depth {
			stride := int64(1)
			if j == 0 {
				stride = 2
			}
			b.register(stage, fmt.Sprintf("block%d-%d", i+1, j), b.regNetBlock(in, a.widths[i], stride, a.groupWidth))
			in = a.widths[i]
		}
		b.register(trunk, fmt.Sprintf("block%d", i+1), stage)
		m.Stages = append(m.Stages, Stage{Name: fmt.Sprintf("stage%d", i+1), Layers: []nn.Layer{stage}})
	}
	m.Pool = nn.NewAdaptiveAvgPool2d(1, 1)
	b.register(m, "stem", stem)
	b.register(m, "trunk_output", trunk)
	b.register(m, "avgpool", m.Pool)
	if numClasses > 0 {
		m.FC = b.linear(in, numClasses)
		b.register(m, "fc", m.FC)
	}
	// torchvision's "ResNet-style" loop: N(0, 2/fan_out) written as it
	// computes it; the squeeze-excitation biases keep their default draws.
	return b.done(m, stagedInit{convStd: func(fan int64) float64 { return math.Sqrt(2.0 / float64(fan)) }, linear: normal001})
}

// ResBottleneck is torchvision's ResBottleneckBlock for RegNetY:
// act(proj(x) + f(x)), where f is a 1×1 convolution ("a"), a grouped 3×3
// ("b"), a squeeze-excitation ("se") and a 1×1 ("c"), and proj a strided
// 1×1 convolution where the shape changes (nil elsewhere: the identity).
type ResBottleneck struct {
	nn.ModuleBase
	Proj *ConvNormAct
	F    *nn.Sequential
	Act  nn.Layer
}

// Forward computes act(proj(x) + f(x)).
func (m *ResBottleneck) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	out, err := m.F.Forward(x)
	if err != nil {
		return nil, err
	}
	id := x
	if m.Proj != nil {
		if id, err = m.Proj.Forward(x); err != nil {
			return nil, err
		}
	}
	if err := out.Add_(id, 1); err != nil {
		return nil, err
	}
	return m.Act.Forward(out)
}

func (b *netBuilder) regNetBlock(in, out, stride, groupWidth int64) *ResBottleneck {
	m := &ResBottleneck{Act: nn.NewReLU(true)}
	m.SetTraining(true)
	if in != out || stride != 1 {
		m.Proj = b.convNormAct(in, out, 1, stride, 1, nil)
		b.register(m, "proj", m.Proj)
	}
	// The bottleneck multiplier is 1: the block is as wide as its output.
	f := nn.NewSequential()
	b.register(f, "a", b.convNormAct(in, out, 1, 1, 1, nn.NewReLU(true)))
	b.register(f, "b", b.convNormAct(out, out, 3, stride, out/groupWidth, nn.NewReLU(true)))
	squeeze := int64(math.RoundToEven(0.25 * float64(in)))
	b.register(f, "se", b.squeezeExcitation(out, squeeze, nn.NewReLU(false), nn.NewSigmoid()))
	b.register(f, "c", b.convNormAct(out, out, 1, 1, 1, nil))
	m.F = f
	b.register(m, "f", f)
	b.register(m, "activation", m.Act)
	return m
}
