package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// StochasticDepth is torchvision.ops.StochasticDepth: in training mode it
// drops the residual branch it wraps with probability P, for each sample
// ("row") or for the whole batch at once ("batch"), and scales what
// survives by 1/(1-P). In eval mode it is the identity. Its masks come from
// libtorch's default generator, as torchvision's do, so the same seed drops
// the same rows.
type StochasticDepth struct {
	ModuleBase
	P    float64
	Mode string
}

// NewStochasticDepth returns a stochastic depth layer dropping with
// probability p in mode "row" or "batch".
func NewStochasticDepth(p float64, mode string) (*StochasticDepth, error) {
	if p < 0 || p > 1 {
		return nil, fmt.Errorf("nn: StochasticDepth: drop probability must be in [0, 1], got %v", p)
	}
	if mode != "row" && mode != "batch" {
		return nil, fmt.Errorf("nn: StochasticDepth: mode must be \"row\" or \"batch\", got %q", mode)
	}
	return &StochasticDepth{ModuleBase: ModuleBase{training: true}, P: p, Mode: mode}, nil
}

// Forward returns x times a mask of zeros and 1/(1-P): one draw per sample
// (dimension 0) in "row" mode, one for the batch in "batch" mode.
func (m *StochasticDepth) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	if !m.training || m.P == 0 {
		return x, nil
	}
	size := make([]int64, x.Dim())
	for i := range size {
		size[i] = 1
	}
	if m.Mode == "row" && len(size) > 0 {
		size[0] = x.Shape()[0]
	}
	noise, err := torch.Empty(size, x.DType(), x.Device())
	if err != nil {
		return nil, err
	}
	survival := 1 - m.P
	if err := noise.Bernoulli_(survival, nil); err != nil {
		return nil, err
	}
	if survival > 0 {
		if noise, err = noise.DivScalar(survival); err != nil {
			return nil, err
		}
	}
	return x.Mul(noise)
}
