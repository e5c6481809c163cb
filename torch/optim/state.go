package optim

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/finetune-go/finetune/torch"
)

// State is an optimizer's resumable state in the layout of PyTorch's
// optimizer.state_dict(), flattened so that a checkpoint can store the
// tensors in a safetensors file and the rest as JSON.
type State struct {
	// Optimizer names the algorithm: "SGD", "Adam" or "AdamW".
	Optimizer string `json:"optimizer"`
	// Groups holds each parameter group's hyper-parameters and the numbers
	// of its parameters.
	Groups []GroupState `json:"param_groups"`
	// Tensors maps "state.<i>.<buffer>" to a buffer of parameter i, where
	// i numbers the parameters across groups in order and buffer is
	// PyTorch's name: "momentum_buffer" (SGD); "step", "exp_avg",
	// "exp_avg_sq" and "max_exp_avg_sq" (Adam, AdamW). "step" is a 0-d
	// float32 tensor, as in PyTorch. Parameters that never had a gradient
	// have no entries.
	Tensors map[string]*torch.Tensor `json:"-"`
}

// GroupState is a parameter group in a State: the numbers of its
// parameters and its hyper-parameters, under PyTorch's names in JSON.
type GroupState struct {
	Params      []int      `json:"params"`
	LR          float64    `json:"lr"`
	WeightDecay float64    `json:"weight_decay"`
	Momentum    float64    `json:"momentum,omitzero"`
	Dampening   float64    `json:"dampening,omitzero"`
	Nesterov    bool       `json:"nesterov,omitzero"`
	Betas       [2]float64 `json:"betas,omitzero"`
	Eps         float64    `json:"eps,omitzero"`
	AMSGrad     bool       `json:"amsgrad,omitzero"`
}

func newGroupState(g *ParamGroup) GroupState {
	return GroupState{
		LR: g.LR, WeightDecay: g.WeightDecay,
		Momentum: g.Momentum, Dampening: g.Dampening, Nesterov: g.Nesterov,
		Betas: g.Betas, Eps: g.Eps, AMSGrad: g.AMSGrad,
	}
}

// group returns the ParamGroup over params with gs's hyper-parameters.
func (gs *GroupState) group(params []*torch.Tensor) ParamGroup {
	return ParamGroup{
		Params: params, LR: gs.LR, WeightDecay: gs.WeightDecay,
		Momentum: gs.Momentum, Dampening: gs.Dampening, Nesterov: gs.Nesterov,
		Betas: gs.Betas, Eps: gs.Eps, AMSGrad: gs.AMSGrad,
	}
}

// Free releases s's tensors.
func (s *State) Free() {
	for _, t := range s.Tensors {
		t.Free()
	}
}

// State returns a copy of the optimizer's state. Its tensors are new: they
// belong to the calling goroutine's current scope, if one is open, and
// otherwise to the caller, who may Free the State when it is written.
func (o *optimizer) State() (*State, error) {
	st := &State{Optimizer: o.rule.name(), Tensors: map[string]*torch.Tensor{}}
	id := 0
	for _, g := range o.groups {
		gs := newGroupState(g)
		for _, p := range g.Params {
			gs.Params = append(gs.Params, id)
			if s := o.state[p]; s != nil {
				if err := s.export(id, st.Tensors); err != nil {
					st.Free()
					return nil, fmt.Errorf("optim: %s state: parameter %d: %w", o.rule.name(), id, err)
				}
			}
			id++
		}
		st.Groups = append(st.Groups, gs)
	}
	return st, nil
}

// export adds copies of s's tensors, as parameter id's, to out.
func (s *paramState) export(id int, out map[string]*torch.Tensor) error {
	prefix := "state." + strconv.Itoa(id) + "."
	if s.step != 0 {
		t, err := torch.Scalar(float64(s.step))
		if err != nil {
			return err
		}
		out[prefix+"step"] = t
	}
	for _, b := range s.buffers() {
		if *b.t == nil {
			continue
		}
		t, err := (*b.t).Clone()
		if err != nil {
			return err
		}
		out[prefix+b.name] = t
	}
	return nil
}

// LoadState replaces the optimizer's state and its groups' hyper-parameters
// with those in s, which must come from an optimizer of the same kind with
// groups of the same sizes; the parameters are matched by position. The
// tensors are copied to each parameter's device and dtype, so s may be
// freed afterwards. On error the optimizer is unchanged.
func (o *optimizer) LoadState(s *State) error {
	if err := o.loadState(s); err != nil {
		return fmt.Errorf("optim: %s load state: %w", o.rule.name(), err)
	}
	return nil
}

func (o *optimizer) loadState(s *State) error {
	if s.Optimizer != o.rule.name() {
		return fmt.Errorf("state is of optimizer %q", s.Optimizer)
	}
	if len(s.Groups) != len(o.groups) {
		return fmt.Errorf("state has %d parameter groups, optimizer %d", len(s.Groups), len(o.groups))
	}
	params := map[int]*torch.Tensor{}
	groups := make([]ParamGroup, len(o.groups))
	for i, gs := range s.Groups {
		g := o.groups[i]
		if len(gs.Params) != len(g.Params) {
			return fmt.Errorf("group %d: state has %d parameters, optimizer %d", i, len(gs.Params), len(g.Params))
		}
		for j, id := range gs.Params {
			if _, dup := params[id]; dup {
				return fmt.Errorf("group %d: parameter number %d appears more than once", i, id)
			}
			params[id] = g.Params[j]
		}
		groups[i] = gs.group(g.Params)
		if err := o.rule.check(&groups[i]); err != nil {
			return fmt.Errorf("group %d: %w", i, err)
		}
	}

	state := map[*torch.Tensor]*paramState{}
	err := torch.NoGrad(func() error {
		return torch.WithScope(func() error {
			for name, t := range s.Tensors {
				if err := loadTensor(state, params, name, t); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			return nil
		})
	})
	if err != nil {
		for _, ps := range state {
			ps.free()
		}
		return err
	}
	for _, ps := range o.state {
		ps.free()
	}
	o.state = state
	for i, g := range groups {
		*o.groups[i] = g
	}
	return nil
}

// loadTensor copies t, named "state.<i>.<buffer>", into the state of
// parameter i.
func loadTensor(state map[*torch.Tensor]*paramState, params map[int]*torch.Tensor, name string, t *torch.Tensor) error {
	rest, ok := strings.CutPrefix(name, "state.")
	num, buf, ok2 := strings.Cut(rest, ".")
	id, err := strconv.Atoi(num)
	if !ok || !ok2 || err != nil {
		return errors.New("not a state.<i>.<buffer> name")
	}
	p := params[id]
	if p == nil {
		return fmt.Errorf("no parameter %d in the state's groups", id)
	}
	ps := state[p]
	if ps == nil {
		ps = &paramState{}
		state[p] = ps
	}
	if buf == "step" {
		v, err := t.Item()
		if err != nil {
			return err
		}
		ps.step = float32(v)
		return nil
	}
	i := slices.IndexFunc(ps.buffers(), func(b buffer) bool { return b.name == buf })
	if i < 0 {
		return fmt.Errorf("unknown buffer %q", buf)
	}
	slot := ps.buffers()[i].t
	if *slot != nil {
		return fmt.Errorf("a second %s for parameter %d", buf, id)
	}
	if want, got := p.Shape(), t.Shape(); !slices.Equal(want, got) {
		return fmt.Errorf("shape %v, parameter %v", got, want)
	}
	c, err := p.ZerosLike()
	if err != nil {
		return err
	}
	if err := c.Copy_(t); err != nil {
		return err
	}
	*slot = c.Keep()
	return nil
}
