package nn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/finetune-go/finetune/torch"
)

// SkipChildren, returned by a Walk function, skips the module's subtree.
var SkipChildren = errors.New("nn: skip children")

// Walk calls fn for m and every module under it, parents first, in
// registration order. path is the dotted prefix of the module's state-dict
// keys ("" for m itself, "layer1.0.bn1" deeper down).
func Walk(m Module, fn func(path string, m Module) error) error {
	err := walk("", m, fn)
	if errors.Is(err, SkipChildren) {
		return nil
	}
	return err
}

func walk(path string, m Module, fn func(string, Module) error) error {
	if err := fn(path, m); err != nil {
		if errors.Is(err, SkipChildren) {
			return nil
		}
		return err
	}
	for _, c := range m.Base().children {
		if err := walk(join(path, c.Name), c.Value, fn); err != nil {
			return err
		}
	}
	return nil
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// Train sets m and every module under it to training (on) or eval mode.
// It changes no parameter's requires_grad.
func Train(m Module, on bool) {
	_ = Walk(m, func(_ string, x Module) error {
		x.Base().training = on
		return nil
	})
}

// TrainWhere sets the mode of the modules under m (m included) for which
// match returns true, and leaves the others as they are: every BatchNorm
// to eval while the rest trains, say.
func TrainWhere(m Module, on bool, match func(path string, m Module) bool) {
	_ = Walk(m, func(path string, x Module) error {
		if match(path, x) {
			x.Base().training = on
		}
		return nil
	})
}

// Find returns the module at a dotted path under m ("" is m itself).
func Find(m Module, path string) (Module, error) {
	if path == "" {
		return m, nil
	}
	cur := m
	for _, part := range strings.Split(path, ".") {
		next := cur.Base().Child(part)
		if next == nil {
			return nil, fmt.Errorf("nn: no module %q (no child %q)", path, part)
		}
		cur = next
	}
	return cur, nil
}

// NamedParameters returns every parameter under m with its state-dict key,
// in PyTorch's named_parameters order.
func NamedParameters(m Module) []Named[*torch.Tensor] {
	var out []Named[*torch.Tensor]
	_ = Walk(m, func(path string, x Module) error {
		for _, p := range x.Base().params {
			out = append(out, Named[*torch.Tensor]{join(path, p.Name), p.Value})
		}
		return nil
	})
	return out
}

// NamedBuffers returns every buffer under m with its state-dict key.
func NamedBuffers(m Module) []Named[*torch.Tensor] {
	var out []Named[*torch.Tensor]
	_ = Walk(m, func(path string, x Module) error {
		for _, b := range x.Base().buffers {
			out = append(out, Named[*torch.Tensor]{join(path, b.Name), b.Value})
		}
		return nil
	})
	return out
}

// StateDict returns every parameter and buffer under m, keyed and ordered
// as PyTorch's state_dict(): each module's parameters, then its buffers,
// then its children's entries.
func StateDict(m Module) []Named[*torch.Tensor] {
	var out []Named[*torch.Tensor]
	_ = Walk(m, func(path string, x Module) error {
		b := x.Base()
		for _, p := range b.params {
			out = append(out, Named[*torch.Tensor]{join(path, p.Name), p.Value})
		}
		for _, p := range b.buffers {
			out = append(out, Named[*torch.Tensor]{join(path, p.Name), p.Value})
		}
		return nil
	})
	return out
}

// SetRequiresGrad freezes (false) or unfreezes (true) every parameter under
// m. It changes no module's training mode.
func SetRequiresGrad(m Module, on bool) error {
	for _, p := range NamedParameters(m) {
		if err := p.Value.SetRequiresGrad(on); err != nil {
			return fmt.Errorf("nn: %s: %w", p.Name, err)
		}
	}
	return nil
}

// Freeze stops gradient computation for every parameter under m.
func Freeze(m Module) error { return SetRequiresGrad(m, false) }

// Unfreeze lets every parameter under m train.
func Unfreeze(m Module) error { return SetRequiresGrad(m, true) }

// Trainable returns the parameters under m that require grad, keyed.
func Trainable(m Module) []Named[*torch.Tensor] {
	var out []Named[*torch.Tensor]
	for _, p := range NamedParameters(m) {
		if p.Value.RequiresGrad() {
			out = append(out, p)
		}
	}
	return out
}

// CountParameters returns the number of parameter elements under m, in
// total and of those that require grad.
func CountParameters(m Module) (total, trainable int64) {
	for _, p := range NamedParameters(m) {
		n := p.Value.Numel()
		total += n
		if p.Value.RequiresGrad() {
			trainable += n
		}
	}
	return total, trainable
}

// Free releases every parameter and buffer under m now, instead of
// leaving them to the garbage collector.
func Free(m Module) {
	for _, e := range StateDict(m) {
		e.Value.Free()
	}
}
