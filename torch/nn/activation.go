package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// activation is an elementwise function with an optional in-place form,
// called through libtorch's operator of that name.
type activation struct {
	ModuleBase
	op      string
	Inplace bool
}

func newActivation(op string, inplace bool) activation {
	return activation{ModuleBase: ModuleBase{training: true}, op: op, Inplace: inplace}
}

// Forward applies the function to x, overwriting x when Inplace.
func (m *activation) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	name := "aten::" + m.op
	if m.Inplace {
		name += "_"
	}
	out, err := torch.CallOp(name, "", x)
	if err != nil {
		return nil, fmt.Errorf("nn: %s: %w", m.op, err)
	}
	if m.Inplace {
		// The operator returns x itself: drop the second handle.
		out[0].Free()
		return x, nil
	}
	return out[0], nil
}

// SiLU is torch.nn.SiLU: x·σ(x), the activation of EfficientNet.
type SiLU struct{ activation }

// NewSiLU returns a SiLU; inplace overwrites its input.
func NewSiLU(inplace bool) *SiLU { return &SiLU{newActivation("silu", inplace)} }

// Sigmoid is torch.nn.Sigmoid: σ(x) = 1/(1+e⁻ˣ).
type Sigmoid struct{ activation }

// NewSigmoid returns a Sigmoid.
func NewSigmoid() *Sigmoid { return &Sigmoid{newActivation("sigmoid", false)} }

// Hardswish is torch.nn.Hardswish: x·relu6(x+3)/6, MobileNetV3's cheap
// SiLU.
type Hardswish struct{ activation }

// NewHardswish returns a Hardswish; inplace overwrites its input.
func NewHardswish(inplace bool) *Hardswish { return &Hardswish{newActivation("hardswish", inplace)} }

// Hardsigmoid is torch.nn.Hardsigmoid: relu6(x+3)/6, MobileNetV3's cheap
// sigmoid.
type Hardsigmoid struct{ activation }

// NewHardsigmoid returns a Hardsigmoid; inplace overwrites its input.
func NewHardsigmoid(inplace bool) *Hardsigmoid {
	return &Hardsigmoid{newActivation("hardsigmoid", inplace)}
}
