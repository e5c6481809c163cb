package models

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// ConvBN is a module whose convolution feeds its BatchNorm directly: the
// pair that folding a BatchNorm into its convolution fuses. Every
// BatchNorm of a Staged network is in one, a ConvNormAct, which nn.Walk
// finds.
type ConvBN interface {
	nn.Module
	ConvBN() (*nn.Conv2d, *nn.BatchNorm)
}

var _ ConvBN = (*ConvNormAct)(nil)

// ConvNormAct is torchvision.ops.Conv2dNormActivation with a BatchNorm: a
// convolution without bias, its BatchNorm and an optional activation,
// registered as "0", "1" and "2" as torchvision's Sequential registers
// them. Conv and BN are the pair that folding a BatchNorm into its
// convolution fuses; ConvBN returns them.
type ConvNormAct struct {
	nn.ModuleBase
	Conv *nn.Conv2d
	BN   *nn.BatchNorm
	Act  nn.Layer // nil for none
}

// ConvBN returns the convolution and the BatchNorm that follows it.
func (m *ConvNormAct) ConvBN() (*nn.Conv2d, *nn.BatchNorm) { return m.Conv, m.BN }

// Forward computes act(bn(conv(x))).
func (m *ConvNormAct) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	h, err := m.Conv.Forward(x)
	if err != nil {
		return nil, err
	}
	if h, err = m.BN.Forward(h); err != nil {
		return nil, err
	}
	if m.Act == nil {
		return h, nil
	}
	return m.Act.Forward(h)
}

// SqueezeExcitation is torchvision.ops.SqueezeExcitation: x scaled per
// channel by scale(fc2(act(fc1(avgpool(x))))), where fc1 and fc2 are 1×1
// convolutions with bias. It is a torchvision operator, not a torch.nn
// module, so it lives beside the networks that use it.
type SqueezeExcitation struct {
	nn.ModuleBase
	Pool     *nn.AdaptiveAvgPool2d
	FC1, FC2 *nn.Conv2d
	Act      nn.Layer
	Scale    nn.Layer
}

// Forward returns x times its channel weights.
func (m *SqueezeExcitation) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	s := x
	var err error
	for _, l := range []nn.Layer{m.Pool, m.FC1, m.Act, m.FC2, m.Scale} {
		if s, err = l.Forward(s); err != nil {
			return nil, err
		}
	}
	return s.Mul(x)
}

// makeDivisible is torchvision's _make_divisible: v rounded to the
// nearest multiple of divisor, at least minValue (divisor when 0), and
// not more than 10% below v.
func makeDivisible(v float64, divisor, minValue int64) int64 {
	if minValue == 0 {
		minValue = divisor
	}
	n := max(minValue, int64(v+float64(divisor)/2)/divisor*divisor)
	if float64(n) < 0.9*v {
		n += divisor
	}
	return n
}

// netBuilder creates modules in torchvision's construction order, which
// is the order of random draws; it keeps the first error, and the
// modules it returns after one are nil.
type netBuilder struct {
	bn  nn.BatchNormConfig // the family's BatchNorm settings; NumFeatures is set per layer
	err error
}

func (b *netBuilder) conv(in, out, k, stride, groups int64, bias bool) *nn.Conv2d {
	if b.err != nil {
		return nil
	}
	pad := (k - 1) / 2
	c, err := nn.NewConv2d(nn.Conv2dConfig{
		InChannels: in, OutChannels: out, Kernel: [2]int64{k, k},
		Stride: [2]int64{stride, stride}, Padding: [2]int64{pad, pad}, Groups: groups, Bias: bias,
	})
	b.err = err
	return c
}

// convNormAct makes a Conv2dNormActivation with torchvision's padding,
// (k−1)/2; act may be nil.
func (b *netBuilder) convNormAct(in, out, k, stride, groups int64, act nn.Layer) *ConvNormAct {
	m := &ConvNormAct{Conv: b.conv(in, out, k, stride, groups, false), Act: act}
	if b.err != nil {
		return nil
	}
	c := b.bn
	c.NumFeatures = out
	m.BN, b.err = nn.NewBatchNorm2d(c)
	m.SetTraining(true)
	children := []nn.Layer{m.Conv, m.BN}
	if act != nil {
		children = append(children, act)
	}
	b.registerAll(m, children...)
	return m
}

// squeezeExcitation makes a SqueezeExcitation of in channels squeezed to
// squeeze, with activations act and scale.
func (b *netBuilder) squeezeExcitation(in, squeeze int64, act, scale nn.Layer) *SqueezeExcitation {
	m := &SqueezeExcitation{Pool: nn.NewAdaptiveAvgPool2d(1, 1), Act: act, Scale: scale}
	m.FC1 = b.conv(in, squeeze, 1, 1, 1, true)
	m.FC2 = b.conv(squeeze, in, 1, 1, 1, true)
	m.SetTraining(true)
	b.register(m, "avgpool", m.Pool)
	b.register(m, "fc1", m.FC1)
	b.register(m, "fc2", m.FC2)
	b.register(m, "activation", m.Act)
	b.register(m, "scale_activation", m.Scale)
	return m
}

func (b *netBuilder) linear(in, out int64) *nn.Linear {
	if b.err != nil {
		return nil
	}
	l, err := nn.NewLinear(in, out, true)
	b.err = err
	return l
}

func (b *netBuilder) dropout(p float64) *nn.Dropout {
	if b.err != nil {
		return nil
	}
	d, err := nn.NewDropout(p)
	b.err = err
	return d
}

// register adds child to m under name, unless an error came first.
func (b *netBuilder) register(m nn.Module, name string, child nn.Module) {
	if b.err == nil {
		b.err = m.Base().RegisterModule(name, child)
	}
}

// registerAll adds children to m as "0", "1", …, as nn.Sequential does.
func (b *netBuilder) registerAll(m nn.Module, children ...nn.Layer) {
	for i, c := range children {
		b.register(m, fmt.Sprint(i), c)
	}
}

// sequential returns layers as an nn.Sequential, or nil after an error.
func (b *netBuilder) sequential(layers ...nn.Layer) *nn.Sequential {
	if b.err != nil {
		return nil
	}
	return nn.NewSequential(layers...)
}
