package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// To moves every parameter and buffer under m, and any gradient, to device
// d, as PyTorch's m.to(device, memory_format=format). Each tensor keeps its
// identity and dtype, so optimizers made before the move still hold m's
// parameters. With format ChannelsLast the 4-d tensors (convolution
// weights) also take the channels-last layout; PreserveFormat and
// ContiguousFormat leave layouts as they are.
func To(m Module, d torch.Device, format torch.MemoryFormat) error {
	return torch.WithScope(func() error {
		for _, e := range StateDict(m) {
			if err := moveTensor(e.Value, d, format); err != nil {
				return fmt.Errorf("nn: moving %s to %v: %w", e.Name, d, err)
			}
		}
		return nil
	})
}

// moveTensor re-homes t, and its gradient if it has one, in place.
func moveTensor(t *torch.Tensor, d torch.Device, format torch.MemoryFormat) error {
	moved, err := convert(t, d, format)
	if err != nil {
		return err
	}
	if err := t.SetData(moved); err != nil {
		return err
	}
	g, err := t.Grad()
	if err != nil || g == nil {
		return err
	}
	if g, err = convert(g, d, format); err != nil {
		return err
	}
	return t.SetGrad(g)
}

func convert(t *torch.Tensor, d torch.Device, format torch.MemoryFormat) (*torch.Tensor, error) {
	out, err := t.Detach()
	if err != nil {
		return nil, err
	}
	if out, err = out.To(d, t.DType()); err != nil {
		return nil, err
	}
	if format == torch.ChannelsLast && out.Dim() == 4 {
		return out.ContiguousAs(torch.ChannelsLast)
	}
	return out, nil
}
