package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// Linear is torch.nn.Linear: y = x·weightᵀ + bias, with "weight"
// (out, in) and, if bias, "bias" (out).
type Linear struct {
	ModuleBase
	In, Out int64
}

// NewLinear makes a linear layer initialised as PyTorch's.
func NewLinear(in, out int64, bias bool) (*Linear, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("nn: Linear: sizes must be positive, got %d→%d", in, out)
	}
	m := &Linear{In: in, Out: out}
	m.training = true
	w, err := torch.Empty([]int64{out, in})
	if err != nil {
		return nil, err
	}
	var b *torch.Tensor
	if bias {
		if b, err = torch.Empty([]int64{out}); err != nil {
			return nil, err
		}
	}
	if err := defaultLinearInit(w, b, in); err != nil {
		return nil, err
	}
	if err := m.RegisterParameter("weight", w); err != nil {
		return nil, err
	}
	if b != nil {
		if err := m.RegisterParameter("bias", b); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Forward applies the layer to x (…, in).
func (m *Linear) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return torch.Linear(x, m.Parameter("weight"), m.Parameter("bias"))
}
