package optim

import (
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
)

// Adam is the Adam algorithm with L2 weight decay, as torch.optim.Adam. It
// reads each group's LR, Betas, Eps, WeightDecay and AMSGrad. For a
// parameter p with gradient g, at step t a step computes
//
//	g = g + WeightDecay*p
//	m = Betas[0]*m + (1-Betas[0])*g
//	v = Betas[1]*v + (1-Betas[1])*g*g
//	vmax = max(vmax, v), used instead of v below  (with AMSGrad)
//	p = p - LR/(1-Betas[0]^t) * m / (sqrt(v)/sqrt(1-Betas[1]^t) + Eps)
type Adam struct{ optimizer }

// AdamW is Adam with decoupled weight decay, as torch.optim.AdamW: a step
// first scales the parameter by 1-LR*WeightDecay and then makes Adam's
// update without weight decay. It reads the same fields as Adam.
type AdamW struct{ optimizer }

// AdamGroup returns a group over params with torch.optim.Adam's default
// hyper-parameters: LR 1e-3, Betas (0.9, 0.999), Eps 1e-8, no weight decay.
func AdamGroup(params ...*torch.Tensor) ParamGroup {
	return ParamGroup{Params: params, LR: 1e-3, Betas: [2]float64{0.9, 0.999}, Eps: 1e-8}
}

// AdamWGroup returns a group over params with torch.optim.AdamW's default
// hyper-parameters: LR 1e-3, Betas (0.9, 0.999), Eps 1e-8, WeightDecay 1e-2.
func AdamWGroup(params ...*torch.Tensor) ParamGroup {
	g := AdamGroup(params...)
	g.WeightDecay = 1e-2
	return g
}

// NewAdam returns an Adam optimizer over the groups, which it copies.
// AdamGroup makes a group with PyTorch's defaults.
func NewAdam(groups ...ParamGroup) (*Adam, error) {
	o, err := newOptimizer(adam{}, groups)
	if err != nil {
		return nil, err
	}
	return &Adam{o}, nil
}

// NewAdamW returns an AdamW optimizer over the groups, which it copies.
// AdamWGroup makes a group with PyTorch's defaults.
func NewAdamW(groups ...ParamGroup) (*AdamW, error) {
	o, err := newOptimizer(adam{decoupled: true}, groups)
	if err != nil {
		return nil, err
	}
	return &AdamW{o}, nil
}

// adam is the rule of Adam and, with decoupled weight decay, of AdamW.
type adam struct{ decoupled bool }

func (r adam) name() string {
	if r.decoupled {
		return "AdamW"
	}
	return "Adam"
}

func (adam) check(g *ParamGroup) error {
	switch {
	case !(g.LR >= 0):
		return fmt.Errorf("invalid LR %v, want >= 0", g.LR)
	case !(g.Eps >= 0):
		return fmt.Errorf("invalid Eps %v, want >= 0", g.Eps)
	case !(g.Betas[0] >= 0 && g.Betas[0] < 1):
		return fmt.Errorf("invalid Betas[0] %v, want it in [0, 1)", g.Betas[0])
	case !(g.Betas[1] >= 0 && g.Betas[1] < 1):
		return fmt.Errorf("invalid Betas[1] %v, want it in [0, 1)", g.Betas[1])
	case !(g.WeightDecay >= 0):
		return fmt.Errorf("invalid WeightDecay %v, want >= 0", g.WeightDecay)
	}
	return nil
}

// update follows _single_tensor_adam in torch/optim/adam.py and
// _single_tensor_adamw in adamw.py.
func (r adam) update(g *ParamGroup, p, grad *torch.Tensor, s *paramState) error {
	var err error
	if s.expAvg == nil {
		if s.expAvg, err = zerosLike(p); err != nil {
			return err
		}
		if s.expAvgSq, err = zerosLike(p); err != nil {
			return err
		}
	}
	if g.AMSGrad && s.maxExpAvgSq == nil {
		if s.maxExpAvgSq, err = zerosLike(p); err != nil {
			return err
		}
	}
	s.step++
	if g.WeightDecay != 0 {
		if r.decoupled {
			// The conversion rounds LR*WeightDecay before the
			// subtraction, as Python does, rather than fusing them.
			err = p.MulScalar_(1 - float64(g.LR*g.WeightDecay))
		} else {
			grad, err = grad.AddScaled(p, g.WeightDecay)
		}
		if err != nil {
			return err
		}
	}
	beta1, beta2 := g.Betas[0], g.Betas[1]
	if err := s.expAvg.MulScalar_(beta1); err != nil {
		return err
	}
	if err := s.expAvg.Add_(grad, 1-beta1); err != nil {
		return err
	}
	if err := s.expAvgSq.MulScalar_(beta2); err != nil {
		return err
	}
	if err := s.expAvgSq.Addcmul_(grad, grad, 1-beta2); err != nil {
		return err
	}

	step := float64(s.step)
	stepSize := g.LR / (1 - pow(beta1, step))
	bias2Sqrt := math.Sqrt(1 - pow(beta2, step))

	second := s.expAvgSq
	if g.AMSGrad {
		if err := s.maxExpAvgSq.MaximumInto(s.expAvgSq, s.maxExpAvgSq); err != nil {
			return err
		}
		second = s.maxExpAvgSq
	}
	denom, err := second.Sqrt()
	if err != nil {
		return err
	}
	if denom, err = denom.DivScalar(bias2Sqrt); err != nil {
		return err
	}
	if err := denom.AddScalar_(g.Eps); err != nil {
		return err
	}
	return p.Addcdiv_(s.expAvg, denom, -stepSize)
}
