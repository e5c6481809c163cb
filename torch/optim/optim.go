package optim

import (
	"errors"
	"fmt"
	"slices"

	"github.com/finetune-go/finetune/torch"
)

// Optimizer is the interface SGD, Adam and AdamW share.
type Optimizer interface {
	// Step updates every parameter that has a gradient; parameters whose
	// Grad is nil are skipped and their state is left as it is.
	Step() error
	// ZeroGrad drops every parameter's gradient, as PyTorch's
	// zero_grad(set_to_none=True).
	ZeroGrad() error
	// Groups returns the parameter groups. Changes to their
	// hyper-parameters take effect on the next Step.
	Groups() []*ParamGroup
	// State returns a copy of the optimizer's state for a checkpoint.
	State() (*State, error)
	// LoadState replaces the optimizer's state and hyper-parameters with a
	// copy of s.
	LoadState(s *State) error
}

var (
	_ Optimizer = (*SGD)(nil)
	_ Optimizer = (*Adam)(nil)
	_ Optimizer = (*AdamW)(nil)
)

// ParamGroup is a set of parameters and the hyper-parameters they are
// updated with. It holds the hyper-parameters of every optimizer in the
// package; each optimizer reads only those its documentation names.
type ParamGroup struct {
	// Params are the parameters; each appears in only one group of an
	// optimizer.
	Params []*torch.Tensor
	// LR is the learning rate.
	LR float64
	// WeightDecay is the L2 penalty added to the gradient (SGD, Adam) or
	// the decoupled decay rate (AdamW).
	WeightDecay float64
	// Momentum is SGD's momentum factor; 0 turns momentum off.
	Momentum float64
	// Dampening damps the gradient's contribution to SGD's momentum.
	Dampening float64
	// Nesterov selects Nesterov momentum for SGD.
	Nesterov bool
	// Betas are Adam's and AdamW's coefficients of the running averages of
	// the gradient and of its square.
	Betas [2]float64
	// Eps is added to Adam's and AdamW's denominator for numerical
	// stability.
	Eps float64
	// AMSGrad selects the AMSGrad variant of Adam and AdamW.
	AMSGrad bool
}

// rule is one optimizer's update rule.
type rule interface {
	// name is the optimizer's name, as in PyTorch.
	name() string
	// check validates a group's hyper-parameters.
	check(g *ParamGroup) error
	// update applies one step to p, which has gradient grad. It runs in a
	// scope and under no-grad mode; tensors it stores in s must be kept.
	update(g *ParamGroup, p, grad *torch.Tensor, s *paramState) error
}

// optimizer holds what every optimizer has: groups and per-parameter state.
type optimizer struct {
	rule   rule
	groups []*ParamGroup
	state  map[*torch.Tensor]*paramState
}

func newOptimizer(r rule, groups []ParamGroup) (optimizer, error) {
	o := optimizer{rule: r, state: map[*torch.Tensor]*paramState{}}
	for _, g := range groups {
		g.Params = slices.Clone(g.Params)
		o.groups = append(o.groups, &g)
	}
	return o, o.check()
}

// check validates the groups: at least one parameter, none nil or in two
// places, and hyper-parameters the rule accepts.
func (o *optimizer) check() error {
	seen := map[*torch.Tensor]bool{}
	for i, g := range o.groups {
		for j, p := range g.Params {
			if p == nil {
				return fmt.Errorf("optim: %s: group %d: parameter %d is nil", o.rule.name(), i, j)
			}
			if seen[p] {
				return fmt.Errorf("optim: %s: group %d: parameter %d appears more than once", o.rule.name(), i, j)
			}
			seen[p] = true
		}
		if err := o.rule.check(g); err != nil {
			return fmt.Errorf("optim: %s: group %d: %w", o.rule.name(), i, err)
		}
	}
	if len(seen) == 0 {
		return fmt.Errorf("optim: %s: no parameters to optimize", o.rule.name())
	}
	return nil
}

// Step updates every parameter that has a gradient, group by group, with
// the group's current hyper-parameters; parameters whose Grad is nil are
// skipped, their state untouched. It first validates the groups and
// returns an error without changing anything if one is invalid.
func (o *optimizer) Step() error {
	if err := o.check(); err != nil {
		return err
	}
	return torch.NoGrad(func() error {
		for i, g := range o.groups {
			for j, p := range g.Params {
				if err := torch.WithScope(func() error { return o.stepParam(g, p) }); err != nil {
					return fmt.Errorf("optim: %s step: group %d parameter %d: %w", o.rule.name(), i, j, err)
				}
			}
		}
		return nil
	})
}

func (o *optimizer) stepParam(g *ParamGroup, p *torch.Tensor) error {
	grad, err := p.Grad()
	if err != nil || grad == nil {
		return err
	}
	s := o.state[p]
	if s == nil {
		s = &paramState{}
		o.state[p] = s
	}
	return o.rule.update(g, p, grad, s)
}

// ZeroGrad drops every parameter's gradient, as PyTorch's
// zero_grad(set_to_none=True).
func (o *optimizer) ZeroGrad() error {
	var errs []error
	for _, g := range o.groups {
		for _, p := range g.Params {
			if err := p.ClearGrad(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("optim: %s zero grad: %w", o.rule.name(), err)
	}
	return nil
}

// Groups returns the optimizer's parameter groups. Changing a group's
// hyper-parameters (LR, say, from a scheduler) takes effect on the next
// Step.
func (o *optimizer) Groups() []*ParamGroup { return o.groups }

// paramState is the state of one parameter. Each optimizer uses some of
// its fields.
type paramState struct {
	// step counts Adam's and AdamW's updates. It is a float32, as PyTorch's
	// state["step"] tensor is, so it stops at 2^24 as PyTorch's does.
	step float32
	// momentumBuffer is SGD's.
	momentumBuffer *torch.Tensor
	// expAvg, expAvgSq and maxExpAvgSq are Adam's and AdamW's.
	expAvg, expAvgSq, maxExpAvgSq *torch.Tensor
}

// buffer is a named state tensor.
type buffer struct {
	name string
	t    **torch.Tensor
}

// buffers lists s's tensors by PyTorch's names.
func (s *paramState) buffers() []buffer {
	return []buffer{
		{"momentum_buffer", &s.momentumBuffer},
		{"exp_avg", &s.expAvg},
		{"exp_avg_sq", &s.expAvgSq},
		{"max_exp_avg_sq", &s.maxExpAvgSq},
	}
}

// free releases s's tensors.
func (s *paramState) free() {
	for _, b := range s.buffers() {
		(*b.t).Free()
		*b.t = nil
	}
}

// zerosLike returns a tensor of zeros like p that outlives the current
// scope, for a new state buffer.
func zerosLike(p *torch.Tensor) (*torch.Tensor, error) {
	z, err := p.ZerosLike()
	if err != nil {
		return nil, err
	}
	return z.Keep(), nil
}
