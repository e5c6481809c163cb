package optim

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// SGD is stochastic gradient descent with optional momentum, as
// torch.optim.SGD. It reads each group's LR, Momentum, Dampening, Nesterov
// and WeightDecay. For a parameter p with gradient g a step computes
//
//	g = g + WeightDecay*p
//	buf = g on the first step, else Momentum*buf + (1-Dampening)*g
//	g = g + Momentum*buf with Nesterov, else buf  (when Momentum != 0)
//	p = p - LR*g
type SGD struct{ optimizer }

// NewSGD returns an SGD optimizer over the groups, which it copies. The zero
// values of Momentum, Dampening, WeightDecay and Nesterov are PyTorch's
// defaults.
func NewSGD(groups ...ParamGroup) (*SGD, error) {
	o, err := newOptimizer(sgd{}, groups)
	if err != nil {
		return nil, err
	}
	return &SGD{o}, nil
}

type sgd struct{}

func (sgd) name() string { return "SGD" }

func (sgd) check(g *ParamGroup) error {
	switch {
	case !(g.LR >= 0):
		return fmt.Errorf("invalid LR %v, want >= 0", g.LR)
	case !(g.Momentum >= 0):
		return fmt.Errorf("invalid Momentum %v, want >= 0", g.Momentum)
	case !(g.WeightDecay >= 0):
		return fmt.Errorf("invalid WeightDecay %v, want >= 0", g.WeightDecay)
	case g.Nesterov && (g.Momentum <= 0 || g.Dampening != 0):
		return fmt.Errorf("invalid Nesterov with Momentum %v and Dampening %v, want Momentum > 0 and Dampening 0", g.Momentum, g.Dampening)
	}
	return nil
}

// update follows _single_tensor_sgd in torch/optim/sgd.py.
func (sgd) update(g *ParamGroup, p, grad *torch.Tensor, s *paramState) error {
	d := grad
	var err error
	if g.WeightDecay != 0 {
		if d, err = d.AddScaled(p, g.WeightDecay); err != nil {
			return err
		}
	}
	if g.Momentum != 0 {
		if s.momentumBuffer == nil {
			buf, err := d.Clone()
			if err != nil {
				return err
			}
			s.momentumBuffer = buf.Keep()
		} else {
			if err := s.momentumBuffer.MulScalar_(g.Momentum); err != nil {
				return err
			}
			if err := s.momentumBuffer.Add_(d, 1-g.Dampening); err != nil {
				return err
			}
		}
		if !g.Nesterov {
			d = s.momentumBuffer
		} else if d, err = d.AddScaled(s.momentumBuffer, g.Momentum); err != nil {
			return err
		}
	}
	return p.Add_(d, -g.LR)
}
