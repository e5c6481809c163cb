package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// LayerNorm is torch.nn.LayerNorm: it normalises over the trailing
// dimensions Shape of its input, with the statistics of each sample, and
// with Affine scales and shifts by "weight" and "bias" (Shape, initialised
// to ones and zeros). It has no running statistics: training and eval mode
// compute the same.
type LayerNorm struct {
	ModuleBase
	Shape  []int64
	Eps    float64
	Affine bool
}

// NewLayerNorm returns a LayerNorm over the trailing dimensions shape.
func NewLayerNorm(shape []int64, eps float64, affine bool) (*LayerNorm, error) {
	if len(shape) == 0 {
		return nil, fmt.Errorf("nn: LayerNorm: empty normalized shape")
	}
	for _, d := range shape {
		if d <= 0 {
			return nil, fmt.Errorf("nn: LayerNorm: normalized shape must be positive, got %v", shape)
		}
	}
	m := &LayerNorm{ModuleBase: ModuleBase{training: true}, Shape: append([]int64(nil), shape...), Eps: eps, Affine: affine}
	if affine {
		w, err := torch.Ones(m.Shape)
		if err != nil {
			return nil, err
		}
		b, err := torch.Zeros(m.Shape)
		if err != nil {
			return nil, err
		}
		if err := m.RegisterParameter("weight", w); err != nil {
			return nil, err
		}
		if err := m.RegisterParameter("bias", b); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Forward normalises x (…, Shape…).
func (m *LayerNorm) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	out, err := first(torch.CallOp("aten::layer_norm", "", x, m.Shape, m.Parameter("weight"), m.Parameter("bias"), m.Eps))
	if err != nil {
		return nil, fmt.Errorf("nn: LayerNorm: %w", err)
	}
	return out, nil
}

// LayerNorm2d is torchvision's convnext.LayerNorm2d: a LayerNorm over the
// channels of an (N, C, H, W) input, each pixel normalised on its own. Its
// state-dict keys are LayerNorm's.
type LayerNorm2d struct{ LayerNorm }

// NewLayerNorm2d returns a LayerNorm2d over channels, with weight and
// bias.
func NewLayerNorm2d(channels int64, eps float64) (*LayerNorm2d, error) {
	ln, err := NewLayerNorm([]int64{channels}, eps, true)
	if err != nil {
		return nil, err
	}
	return &LayerNorm2d{*ln}, nil
}

// Forward normalises x (N, C, H, W) over C.
func (m *LayerNorm2d) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	if x.Dim() != 4 {
		return nil, fmt.Errorf("nn: LayerNorm2d: expected a 4-d input, got %d-d", x.Dim())
	}
	h, err := x.Permute(0, 2, 3, 1)
	if err != nil {
		return nil, err
	}
	if h, err = m.LayerNorm.Forward(h); err != nil {
		return nil, err
	}
	return h.Permute(0, 3, 1, 2)
}
