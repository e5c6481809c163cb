package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// GELU is torch.nn.GELU: x·Φ(x), exactly ("none") or with the tanh
// approximation ("tanh").
type GELU struct {
	ModuleBase
	Approximate string
}

// NewGELU returns a GELU; approximate is "none" or "tanh".
func NewGELU(approximate string) (*GELU, error) {
	if approximate != "none" && approximate != "tanh" {
		return nil, fmt.Errorf("nn: GELU: approximate must be \"none\" or \"tanh\", got %q", approximate)
	}
	return &GELU{ModuleBase: ModuleBase{training: true}, Approximate: approximate}, nil
}

// Forward returns GELU(x).
func (m *GELU) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	out, err := first(torch.CallOp("aten::gelu", "", x, m.Approximate))
	if err != nil {
		return nil, fmt.Errorf("nn: GELU: %w", err)
	}
	return out, nil
}
