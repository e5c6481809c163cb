package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// ReLU is torch.nn.ReLU.
type ReLU struct {
	ModuleBase
	Inplace bool
}

// NewReLU returns a ReLU; inplace overwrites its input.
func NewReLU(inplace bool) *ReLU {
	return &ReLU{ModuleBase: ModuleBase{training: true}, Inplace: inplace}
}

// Forward returns max(x, 0).
func (m *ReLU) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	if m.Inplace {
		return x, x.Relu_()
	}
	return x.Relu()
}

// Dropout is torch.nn.Dropout: active only in training mode. With a
// Generator the masks are drawn from it instead of libtorch's default
// generator, so a training run can save and restore the exact stream
// (the values then differ from aten::dropout's for the same seed).
type Dropout struct {
	ModuleBase
	P         float64
	Generator *torch.Generator
}

// NewDropout returns a dropout layer with drop probability p.
func NewDropout(p float64) (*Dropout, error) {
	if p < 0 || p > 1 {
		return nil, fmt.Errorf("nn: Dropout: probability must be in [0, 1], got %v", p)
	}
	return &Dropout{ModuleBase: ModuleBase{training: true}, P: p}, nil
}

// Forward zeroes elements with probability P in training mode and scales
// the others by 1/(1-P).
func (m *Dropout) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	if m.Generator == nil || !m.training || m.P == 0 {
		return torch.Dropout(x, m.P, m.training)
	}
	if m.P == 1 {
		return x.ZerosLike()
	}
	mask, err := x.Detach()
	if err != nil {
		return nil, err
	}
	if mask, err = mask.ZerosLike(); err != nil {
		return nil, err
	}
	if err := mask.Bernoulli_(1-m.P, m.Generator); err != nil {
		return nil, err
	}
	if err := mask.MulScalar_(1 / (1 - m.P)); err != nil {
		return nil, err
	}
	return x.Mul(mask)
}

// MaxPool2d is torch.nn.MaxPool2d.
type MaxPool2d struct {
	ModuleBase
	Options torch.MaxPool2dOptions
}

// NewMaxPool2d returns a max pooling layer.
func NewMaxPool2d(o torch.MaxPool2dOptions) *MaxPool2d {
	return &MaxPool2d{ModuleBase: ModuleBase{training: true}, Options: o}
}

// Forward pools x (N, C, H, W).
func (m *MaxPool2d) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return torch.MaxPool2d(x, m.Options)
}

// AdaptiveAvgPool2d is torch.nn.AdaptiveAvgPool2d.
type AdaptiveAvgPool2d struct {
	ModuleBase
	H, W int64
}

// NewAdaptiveAvgPool2d averages to an output of h×w.
func NewAdaptiveAvgPool2d(h, w int64) *AdaptiveAvgPool2d {
	return &AdaptiveAvgPool2d{ModuleBase: ModuleBase{training: true}, H: h, W: w}
}

// Forward pools x (N, C, H, W) to (N, C, h, w).
func (m *AdaptiveAvgPool2d) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return torch.AdaptiveAvgPool2d(x, m.H, m.W)
}

// Flatten is torch.nn.Flatten: it merges dimensions Start..End.
type Flatten struct {
	ModuleBase
	Start, End int64
}

// NewFlatten returns PyTorch's default Flatten (dimensions 1..-1).
func NewFlatten() *Flatten {
	return &Flatten{ModuleBase: ModuleBase{training: true}, Start: 1, End: -1}
}

// Forward flattens x.
func (m *Flatten) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return x.Flatten(m.Start, m.End)
}

// Identity is torch.nn.Identity: it returns its input.
type Identity struct{ ModuleBase }

// NewIdentity returns an Identity.
func NewIdentity() *Identity { return &Identity{ModuleBase{training: true}} }

// Forward returns x.
func (m *Identity) Forward(x *torch.Tensor) (*torch.Tensor, error) { return x, nil }

// Sequential is torch.nn.Sequential: children "0", "1", ... applied in
// order.
type Sequential struct{ ModuleBase }

// NewSequential chains layers.
func NewSequential(layers ...Layer) *Sequential {
	s := &Sequential{ModuleBase{training: true}}
	for _, l := range layers {
		s.Append(l)
	}
	return s
}

// Append adds a layer at the end.
func (s *Sequential) Append(l Layer) {
	s.children = append(s.children, Named[Module]{fmt.Sprint(len(s.children)), l})
}

// Forward applies each layer in turn.
func (s *Sequential) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	for _, c := range s.children {
		l, ok := c.Value.(Layer)
		if !ok {
			return nil, fmt.Errorf("nn: Sequential: child %s (%T) has no Forward", c.Name, c.Value)
		}
		var err error
		if x, err = l.Forward(x); err != nil {
			return nil, fmt.Errorf("nn: Sequential: %s: %w", c.Name, err)
		}
	}
	return x, nil
}

// Permute is torchvision.ops.Permute: it reorders the dimensions of its
// input.
type Permute struct {
	ModuleBase
	Dims []int64
}

// NewPermute returns a Permute to the order dims.
func NewPermute(dims ...int64) *Permute {
	return &Permute{ModuleBase: ModuleBase{training: true}, Dims: dims}
}

// Forward returns x with its dimensions in the order Dims.
func (m *Permute) Forward(x *torch.Tensor) (*torch.Tensor, error) { return x.Permute(m.Dims...) }
