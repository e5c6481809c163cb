package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// Conv2dConfig describes a 2-d convolution. Zero Stride and Dilation mean
// 1, zero Groups means 1.
type Conv2dConfig struct {
	InChannels, OutChannels int64
	Kernel                  [2]int64
	Stride, Padding         [2]int64
	Dilation                [2]int64
	Groups                  int64
	Bias                    bool
}

// Conv2d is torch.nn.Conv2d: parameters "weight" (out, in/groups, kH, kW)
// and, with Bias, "bias" (out).
type Conv2d struct {
	ModuleBase
	Config Conv2dConfig
	opts   torch.Conv2dOptions
}

// NewConv2d makes a convolution initialised as PyTorch's.
func NewConv2d(c Conv2dConfig) (*Conv2d, error) {
	if c.Groups == 0 {
		c.Groups = 1
	}
	for _, s := range []*[2]int64{&c.Stride, &c.Dilation} {
		if *s == [2]int64{} {
			*s = [2]int64{1, 1}
		}
	}
	if c.InChannels <= 0 || c.OutChannels <= 0 || c.Kernel[0] <= 0 || c.Kernel[1] <= 0 {
		return nil, fmt.Errorf("nn: Conv2d: channels and kernel must be positive, got %+v", c)
	}
	if c.InChannels%c.Groups != 0 || c.OutChannels%c.Groups != 0 {
		return nil, fmt.Errorf("nn: Conv2d: channels %d→%d not divisible by groups %d", c.InChannels, c.OutChannels, c.Groups)
	}
	m := &Conv2d{Config: c, opts: torch.Conv2dOptions{Stride: c.Stride, Padding: c.Padding, Dilation: c.Dilation, Groups: c.Groups}}
	m.training = true
	w, err := torch.Empty([]int64{c.OutChannels, c.InChannels / c.Groups, c.Kernel[0], c.Kernel[1]})
	if err != nil {
		return nil, err
	}
	var b *torch.Tensor
	if c.Bias {
		if b, err = torch.Empty([]int64{c.OutChannels}); err != nil {
			return nil, err
		}
	}
	if err := defaultLinearInit(w, b, c.InChannels/c.Groups*c.Kernel[0]*c.Kernel[1]); err != nil {
		return nil, err
	}
	if err := m.RegisterParameter("weight", w); err != nil {
		return nil, err
	}
	if b != nil {
		if err := m.RegisterParameter("bias", b); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Forward convolves x (N, C, H, W).
func (m *Conv2d) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return torch.Conv2d(x, m.Parameter("weight"), m.Parameter("bias"), m.opts)
}
