package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// Module is a node of a network. Its ModuleBase holds, in registration order, the
// parameters, buffers and children that make up its state-dict keys, and
// its own training flag.
type Module interface {
	Base() *ModuleBase
}

// Layer is a Module with a one-tensor forward pass.
type Layer interface {
	Module
	Forward(x *torch.Tensor) (*torch.Tensor, error)
}

// Named pairs a value with its name or dotted path.
type Named[T any] struct {
	Name  string
	Value T
}

// ModuleBase is embedded in every module. Its zero value is a module in eval
// mode with nothing registered; constructors register state and switch to
// training mode, as a new PyTorch module starts in training mode.
type ModuleBase struct {
	training bool
	params   []Named[*torch.Tensor]
	buffers  []Named[*torch.Tensor]
	children []Named[Module]
}

// Base returns b itself; embedding ModuleBase makes a struct a Module.
func (b *ModuleBase) Base() *ModuleBase { return b }

// Training reports whether this module (not its children) is in training
// mode.
func (b *ModuleBase) Training() bool { return b.training }

// SetTraining sets this module's mode only; Train sets a whole subtree.
func (b *ModuleBase) SetTraining(on bool) { b.training = on }

// RegisterParameter adds a trainable tensor under name. The tensor is
// taken out of any scope (it lives as long as the module) and set to
// require grad.
func (b *ModuleBase) RegisterParameter(name string, t *torch.Tensor) error {
	if err := b.checkName(name); err != nil {
		return err
	}
	if err := t.Keep().SetRequiresGrad(true); err != nil {
		return fmt.Errorf("nn: parameter %q: %w", name, err)
	}
	b.params = append(b.params, Named[*torch.Tensor]{name, t})
	return nil
}

// RegisterBuffer adds a state tensor that is saved but not trained
// (running statistics, say).
func (b *ModuleBase) RegisterBuffer(name string, t *torch.Tensor) error {
	if err := b.checkName(name); err != nil {
		return err
	}
	b.buffers = append(b.buffers, Named[*torch.Tensor]{name, t.Keep()})
	return nil
}

// RegisterModule adds a child module under name.
func (b *ModuleBase) RegisterModule(name string, m Module) error {
	if err := b.checkName(name); err != nil {
		return err
	}
	b.children = append(b.children, Named[Module]{name, m})
	return nil
}

func (b *ModuleBase) checkName(name string) error {
	if name == "" {
		return fmt.Errorf("nn: empty name")
	}
	for i := range name {
		if name[i] == '.' {
			return fmt.Errorf("nn: name %q contains a dot", name)
		}
	}
	for _, p := range b.params {
		if p.Name == name {
			return fmt.Errorf("nn: %q registered twice", name)
		}
	}
	for _, p := range b.buffers {
		if p.Name == name {
			return fmt.Errorf("nn: %q registered twice", name)
		}
	}
	for _, c := range b.children {
		if c.Name == name {
			return fmt.Errorf("nn: %q registered twice", name)
		}
	}
	return nil
}

// Parameters returns this module's own parameters, in registration order.
func (b *ModuleBase) Parameters() []Named[*torch.Tensor] { return b.params }

// Buffers returns this module's own buffers, in registration order.
func (b *ModuleBase) Buffers() []Named[*torch.Tensor] { return b.buffers }

// Children returns this module's direct submodules, in registration order.
func (b *ModuleBase) Children() []Named[Module] { return b.children }

// Parameter returns the own parameter called name, or nil.
func (b *ModuleBase) Parameter(name string) *torch.Tensor { return lookup(b.params, name) }

// Buffer returns the own buffer called name, or nil.
func (b *ModuleBase) Buffer(name string) *torch.Tensor { return lookup(b.buffers, name) }

// Child returns the direct submodule called name, or nil.
func (b *ModuleBase) Child(name string) Module { return lookup(b.children, name) }

// replace swaps the tensor registered as name (a parameter or a buffer).
func (b *ModuleBase) replace(name string, t *torch.Tensor) bool {
	for _, list := range [][]Named[*torch.Tensor]{b.params, b.buffers} {
		for i := range list {
			if list[i].Name == name {
				list[i].Value = t
				return true
			}
		}
	}
	return false
}

func lookup[T any](list []Named[T], name string) T {
	for _, e := range list {
		if e.Name == name {
			return e.Value
		}
	}
	var zero T
	return zero
}
