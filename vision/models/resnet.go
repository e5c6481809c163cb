package models

import (
	"fmt"
	"maps"
	"slices"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// Arch describes a member of the ResNet family as torchvision builds it.
type Arch struct {
	Name          string
	Bottleneck    bool
	Layers        [4]int
	Groups        int64
	WidthPerGroup int64
}

var archs = map[string]Arch{
	"resnet18":        {Name: "resnet18", Layers: [4]int{2, 2, 2, 2}},
	"resnet34":        {Name: "resnet34", Layers: [4]int{3, 4, 6, 3}},
	"resnet50":        {Name: "resnet50", Bottleneck: true, Layers: [4]int{3, 4, 6, 3}},
	"resnet101":       {Name: "resnet101", Bottleneck: true, Layers: [4]int{3, 4, 23, 3}},
	"resnet152":       {Name: "resnet152", Bottleneck: true, Layers: [4]int{3, 8, 36, 3}},
	"wide_resnet50_2": {Name: "wide_resnet50_2", Bottleneck: true, Layers: [4]int{3, 4, 6, 3}, WidthPerGroup: 128},
	"resnext50_32x4d": {Name: "resnext50_32x4d", Bottleneck: true, Layers: [4]int{3, 4, 6, 3}, Groups: 32, WidthPerGroup: 4},
}

// Archs returns the names of the architectures New builds, sorted.
func Archs() []string { return slices.Sorted(maps.Keys(archs)) }

// LookupArch returns the architecture called name.
func LookupArch(name string) (Arch, error) {
	a, ok := archs[name]
	if !ok {
		return Arch{}, fmt.Errorf("models: unknown architecture %q (known: %v)", name, Archs())
	}
	if a.Groups == 0 {
		a.Groups = 1
	}
	if a.WidthPerGroup == 0 {
		a.WidthPerGroup = 64
	}
	return a, nil
}

// Stages are the named points of a ResNet's feature hierarchy, in order.
var Stages = []string{"stem", "layer1", "layer2", "layer3", "layer4", "pool"}

// ResNet is torchvision's ResNet (v1.5: the stride of a bottleneck is on
// its 3×3 convolution), with the same module tree, state-dict keys and
// initialisation.
type ResNet struct {
	nn.ModuleBase
	Arch       Arch
	NumClasses int64
	Conv1      *nn.Conv2d
	BN1        *nn.BatchNorm
	ReLU       *nn.ReLU
	MaxPool    *nn.MaxPool2d
	Layer      [4]*nn.Sequential
	AvgPool    *nn.AdaptiveAvgPool2d
	FC         *nn.Linear
}

// New builds the architecture called name with a classifier of numClasses
// outputs, initialised as torchvision initialises it: with the same
// torch.ManualSeed the weights equal torchvision's. With numClasses 0 it
// builds the backbone alone (FC is nil; Forward is not available, Pooled
// and Features are), for a head of one's own.
func New(name string, numClasses int64) (*ResNet, error) {
	a, err := LookupArch(name)
	if err != nil {
		return nil, err
	}
	if err := checkNumClasses(name, numClasses); err != nil {
		return nil, err
	}
	s := torch.NewScope()
	defer s.Close()
	b := &builder{arch: a, inplanes: 64}
	m := &ResNet{Arch: a, NumClasses: numClasses}
	m.SetTraining(true)
	m.Conv1 = b.conv(3, 64, 7, 2, 3, 1)
	m.BN1 = b.bn(64)
	m.ReLU = nn.NewReLU(true)
	m.MaxPool = nn.NewMaxPool2d(torch.MaxPool2dOptions{Kernel: [2]int64{3, 3}, Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}})
	for i, planes := range []int64{64, 128, 256, 512} {
		stride := int64(2)
		if i == 0 {
			stride = 1
		}
		m.Layer[i] = b.layer(planes, a.Layers[i], stride)
	}
	m.AvgPool = nn.NewAdaptiveAvgPool2d(1, 1)
	if b.err == nil && numClasses > 0 {
		m.FC, b.err = nn.NewLinear(512*b.expansion(), numClasses, true)
	}
	if b.err != nil {
		return nil, fmt.Errorf("models: %s: %w", name, b.err)
	}
	children := []nn.Named[nn.Module]{
		{Name: "conv1", Value: m.Conv1}, {Name: "bn1", Value: m.BN1}, {Name: "relu", Value: m.ReLU},
		{Name: "maxpool", Value: m.MaxPool}, {Name: "layer1", Value: m.Layer[0]}, {Name: "layer2", Value: m.Layer[1]},
		{Name: "layer3", Value: m.Layer[2]}, {Name: "layer4", Value: m.Layer[3]}, {Name: "avgpool", Value: m.AvgPool},
	}
	if m.FC != nil {
		children = append(children, nn.Named[nn.Module]{Name: "fc", Value: m.FC})
	}
	for _, c := range children {
		if err := m.RegisterModule(c.Name, c.Value); err != nil {
			return nil, err
		}
	}
	if err := initResNet(m); err != nil {
		return nil, fmt.Errorf("models: %s: init: %w", name, err)
	}
	return m, nil
}

// initResNet re-draws every convolution with kaiming_normal_(fan_out,
// relu), after the default initialisation, in module order: torchvision's
// loop over self.modules().
func initResNet(m *ResNet) error {
	return torch.NoGrad(func() error {
		return nn.Walk(m, func(_ string, x nn.Module) error {
			c, ok := x.(*nn.Conv2d)
			if !ok {
				return nil
			}
			k := c.Config
			std := nn.KaimingNormalStd(k.OutChannels * k.Kernel[0] * k.Kernel[1])
			return c.Parameter("weight").Normal_(0, std, nil)
		})
	})
}

// builder creates modules in torchvision's construction order, which is
// the order of random draws; it keeps the first error.
type builder struct {
	arch     Arch
	inplanes int64
	err      error
}

func (b *builder) expansion() int64 {
	if b.arch.Bottleneck {
		return 4
	}
	return 1
}

func (b *builder) conv(in, out, k, stride, pad, groups int64) *nn.Conv2d {
	if b.err != nil {
		return nil
	}
	c, err := nn.NewConv2d(nn.Conv2dConfig{
		InChannels: in, OutChannels: out, Kernel: [2]int64{k, k},
		Stride: [2]int64{stride, stride}, Padding: [2]int64{pad, pad}, Groups: groups,
	})
	b.err = err
	return c
}

func (b *builder) bn(n int64) *nn.BatchNorm {
	if b.err != nil {
		return nil
	}
	m, err := nn.NewBatchNorm2d(nn.DefaultBatchNorm(n))
	b.err = err
	return m
}

func (b *builder) layer(planes int64, blocks int, stride int64) *nn.Sequential {
	seq := nn.NewSequential()
	var down *nn.Sequential
	if stride != 1 || b.inplanes != planes*b.expansion() {
		// torchvision makes the downsample path before the block.
		down = nn.NewSequential(b.conv(b.inplanes, planes*b.expansion(), 1, stride, 0, 1), b.bn(planes*b.expansion()))
	}
	for i := range blocks {
		if i > 0 {
			stride, down = 1, nil
		}
		blk := b.block(planes, stride, down)
		if b.err != nil {
			return seq
		}
		seq.Append(blk)
		b.inplanes = planes * b.expansion()
	}
	return seq
}

func (b *builder) block(planes, stride int64, down *nn.Sequential) *Block {
	blk := &Block{Down: down}
	blk.SetTraining(true)
	type named struct {
		name string
		m    nn.Module
	}
	var order []named
	if b.arch.Bottleneck {
		width := planes * b.arch.WidthPerGroup / 64 * b.arch.Groups
		// Each statement draws from the generator: keep torchvision's order.
		conv1 := b.conv(b.inplanes, width, 1, 1, 0, 1)
		bn1 := b.bn(width)
		conv2 := b.conv(width, width, 3, stride, 1, b.arch.Groups)
		bn2 := b.bn(width)
		conv3 := b.conv(width, planes*4, 1, 1, 0, 1)
		bn3 := b.bn(planes * 4)
		blk.Convs = []*nn.Conv2d{conv1, conv2, conv3}
		blk.BNs = []*nn.BatchNorm{bn1, bn2, bn3}
		blk.ReLU = nn.NewReLU(true)
		order = []named{{"conv1", blk.Convs[0]}, {"bn1", blk.BNs[0]}, {"conv2", blk.Convs[1]}, {"bn2", blk.BNs[1]},
			{"conv3", blk.Convs[2]}, {"bn3", blk.BNs[2]}, {"relu", blk.ReLU}}
	} else {
		conv1 := b.conv(b.inplanes, planes, 3, stride, 1, 1)
		bn1 := b.bn(planes)
		blk.ReLU = nn.NewReLU(true)
		conv2 := b.conv(planes, planes, 3, 1, 1, 1)
		bn2 := b.bn(planes)
		blk.Convs = []*nn.Conv2d{conv1, conv2}
		blk.BNs = []*nn.BatchNorm{bn1, bn2}
		order = []named{{"conv1", blk.Convs[0]}, {"bn1", blk.BNs[0]}, {"relu", blk.ReLU},
			{"conv2", blk.Convs[1]}, {"bn2", blk.BNs[1]}}
	}
	if down != nil {
		order = append(order, named{"downsample", down})
	}
	if b.err != nil {
		return nil
	}
	for _, o := range order {
		if err := blk.RegisterModule(o.name, o.m); err != nil {
			b.err = err
			return nil
		}
	}
	return blk
}

// Block is a residual block: torchvision's BasicBlock (two 3×3
// convolutions) or Bottleneck (1×1, 3×3, 1×1), with an optional
// downsample path for the identity.
type Block struct {
	nn.ModuleBase
	Convs []*nn.Conv2d
	BNs   []*nn.BatchNorm
	ReLU  *nn.ReLU
	Down  *nn.Sequential
}

// Forward computes relu(F(x) + identity(x)).
func (b *Block) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	var down func(*torch.Tensor) (*torch.Tensor, error)
	if b.Down != nil {
		down = b.Down.Forward
	}
	return Residual(x, len(b.Convs), b.convBN, down)
}

// convBN is the block's i-th convolution followed by its BatchNorm.
func (b *Block) convBN(i int, x *torch.Tensor) (*torch.Tensor, error) {
	h, err := b.Convs[i].Forward(x)
	if err != nil {
		return nil, err
	}
	return b.BNs[i].Forward(h)
}

// Residual is the forward pass of a residual block, which Block,
// FusedBlock and blocks of one's own (another weight layout, another
// runtime) share: relu(F(x) + shortcut(x)), where F applies layer(0, ·)
// to layer(n−1, ·) in turn with a ReLU after each but the last, and
// shortcut is down, or the identity where down is nil. The ReLUs and the
// addition work in place on the layers' outputs.
func Residual(x *torch.Tensor, n int, layer func(i int, x *torch.Tensor) (*torch.Tensor, error),
	down func(*torch.Tensor) (*torch.Tensor, error)) (*torch.Tensor, error) {
	out := x
	var err error
	for i := range n {
		if out, err = layer(i, out); err != nil {
			return nil, err
		}
		if i < n-1 {
			if err = out.Relu_(); err != nil {
				return nil, err
			}
		}
	}
	identity := x
	if down != nil {
		if identity, err = down(x); err != nil {
			return nil, err
		}
	}
	if err = out.Add_(identity, 1); err != nil {
		return nil, err
	}
	return out, out.Relu_()
}

// Forward returns the logits for images x (N, 3, H, W).
func (m *ResNet) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	if m.FC == nil {
		return nil, fmt.Errorf("models: %s was built without a classifier: use Pooled or Features", m.Arch.Name)
	}
	f, err := m.Features(x, "pool")
	if err != nil {
		return nil, err
	}
	return m.FC.Forward(f["pool"])
}

// Pooled returns the globally average-pooled features (N, C) that the
// classifier sees.
func (m *ResNet) Pooled(x *torch.Tensor) (*torch.Tensor, error) {
	f, err := m.Features(x, "pool")
	if err != nil {
		return nil, err
	}
	return f["pool"], nil
}

// Features runs the network up to the last of the named stages (see
// Stages: "stem" is after the max pool, "pool" the flattened average pool)
// and returns the output of each requested one.
func (m *ResNet) Features(x *torch.Tensor, stages ...string) (map[string]*torch.Tensor, error) {
	want := map[string]bool{}
	last := -1
	for _, s := range stages {
		i := stageIndex(s)
		if i < 0 {
			return nil, fmt.Errorf("models: unknown stage %q (known: %v)", s, Stages)
		}
		want[s] = true
		last = max(last, i)
	}
	out := map[string]*torch.Tensor{}
	h, err := m.Conv1.Forward(x)
	if err != nil {
		return nil, err
	}
	if h, err = m.BN1.Forward(h); err != nil {
		return nil, err
	}
	if h, err = m.ReLU.Forward(h); err != nil {
		return nil, err
	}
	if h, err = m.MaxPool.Forward(h); err != nil {
		return nil, err
	}
	for i := 0; i <= last; i++ {
		switch {
		case i >= 1 && i <= 4:
			if h, err = m.Layer[i-1].Forward(h); err != nil {
				return nil, fmt.Errorf("models: layer%d: %w", i, err)
			}
		case i == 5:
			if h, err = m.AvgPool.Forward(h); err != nil {
				return nil, err
			}
			if h, err = h.Flatten(1, -1); err != nil {
				return nil, err
			}
		}
		if want[Stages[i]] {
			out[Stages[i]] = h
		}
	}
	return out, nil
}

func stageIndex(s string) int {
	for i, n := range Stages {
		if n == s {
			return i
		}
	}
	return -1
}

// FeatureDim returns the width of the pooled features: 512 for resnet18
// and resnet34, 2048 for the bottleneck architectures.
func (m *ResNet) FeatureDim() int64 {
	if m.Arch.Bottleneck {
		return 2048
	}
	return 512
}
