package finetune

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
)

// foldedConv is a convolution with the BatchNorm after it folded in:
// conv(x, w·s) + (β − μ·s) with s = γ/√(σ²+ε), exactly what the two
// layers compute in evaluation mode, in one kernel.
type foldedConv struct {
	weight, bias *torch.Tensor
	opts         torch.Conv2dOptions
}

func foldConv(c *nn.Conv2d, bn *nn.BatchNorm) (*foldedConv, error) {
	f := &foldedConv{opts: torch.Conv2dOptions{Stride: c.Config.Stride, Padding: c.Config.Padding,
		Dilation: c.Config.Dilation, Groups: c.Config.Groups}}
	err := torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		v, err := bn.Buffer("running_var").AddScalar(bn.Config.Eps)
		if err != nil {
			return err
		}
		if v, err = v.Sqrt(); err != nil {
			return err
		}
		scale, err := torch.Ones(v.Shape())
		if err != nil {
			return err
		}
		if g := bn.Parameter("weight"); g != nil {
			if scale, err = g.Detach(); err != nil {
				return err
			}
		}
		if scale, err = scale.Div(v); err != nil {
			return err
		}
		sw, err := scale.Reshape(-1, 1, 1, 1)
		if err != nil {
			return err
		}
		w, err := c.Parameter("weight").Detach()
		if err != nil {
			return err
		}
		if f.weight, err = w.Mul(sw); err != nil {
			return err
		}
		shift, err := bn.Buffer("running_mean").Mul(scale)
		if err != nil {
			return err
		}
		if shift, err = shift.Neg(); err != nil {
			return err
		}
		if b := bn.Parameter("bias"); b != nil {
			if shift, err = shift.Add(b); err != nil {
				return err
			}
		}
		if cb := c.Parameter("bias"); cb != nil {
			scaled, err := cb.Mul(scale)
			if err != nil {
				return err
			}
			if shift, err = shift.Add(scaled); err != nil {
				return err
			}
		}
		f.bias = shift
		f.weight.Keep()
		f.bias.Keep()
		return nil
	})
	return f, err
}

func (f *foldedConv) forward(x *torch.Tensor) (*torch.Tensor, error) {
	return torch.Conv2d(x, f.weight, f.bias, f.opts)
}

func (f *foldedConv) free() {
	f.weight.Free()
	f.bias.Free()
}

type foldedBlock struct {
	convs []*foldedConv
	down  *foldedConv
}

// FoldedBackbone is a frozen ResNet backbone for inference only: every
// BatchNorm folded into the convolution before it, run without autograd
// in a chosen memory format. It computes what the backbone computes in
// evaluation mode, in fewer kernels.
type FoldedBackbone struct {
	stem   *foldedConv
	pool   torch.MaxPool2dOptions
	blocks [4][]foldedBlock
	format torch.MemoryFormat
}

// Fold builds the folded copy of b as it is now (its BatchNorm statistics
// included); later changes to b are not seen.
func Fold(b *models.ResNet, format torch.MemoryFormat) (*FoldedBackbone, error) {
	fb := &FoldedBackbone{pool: b.MaxPool.Options, format: format}
	var err error
	if fb.stem, err = foldConv(b.Conv1, b.BN1); err != nil {
		return nil, err
	}
	for i, layer := range b.Layer {
		for _, c := range layer.Children() {
			blk, ok := c.Value.(*models.Block)
			if !ok {
				return nil, fmt.Errorf("fold: %T is not a residual block", c.Value)
			}
			var fbk foldedBlock
			for j, conv := range blk.Convs {
				fc, err := foldConv(conv, blk.BNs[j])
				if err != nil {
					return nil, err
				}
				fbk.convs = append(fbk.convs, fc)
			}
			if blk.Down != nil {
				kids := blk.Down.Children()
				if fbk.down, err = foldConv(kids[0].Value.(*nn.Conv2d), kids[1].Value.(*nn.BatchNorm)); err != nil {
					return nil, err
				}
			}
			fb.blocks[i] = append(fb.blocks[i], fbk)
		}
	}
	if format == torch.ChannelsLast {
		err = fb.eachConv(func(f *foldedConv) error {
			w, err := f.weight.ContiguousAs(torch.ChannelsLast)
			if err != nil {
				return err
			}
			f.weight.Free()
			f.weight = w.Keep()
			return nil
		})
	}
	return fb, err
}

func (fb *FoldedBackbone) eachConv(fn func(*foldedConv) error) error {
	if err := fn(fb.stem); err != nil {
		return err
	}
	for _, layer := range fb.blocks {
		for _, blk := range layer {
			for _, c := range append(blk.convs, blk.down) {
				if c == nil {
					continue
				}
				if err := fn(c); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Free releases the folded weights.
func (fb *FoldedBackbone) Free() {
	_ = fb.eachConv(func(f *foldedConv) error { f.free(); return nil })
}

// Layer4 returns the last feature map for images x, without autograd.
func (fb *FoldedBackbone) Layer4(x *torch.Tensor) (*torch.Tensor, error) {
	var out *torch.Tensor
	err := torch.NoGrad(func() error {
		h, err := x.ContiguousAs(fb.format)
		if err != nil {
			return err
		}
		if h, err = fb.stem.forward(h); err != nil {
			return err
		}
		if err = h.Relu_(); err != nil {
			return err
		}
		if h, err = torch.MaxPool2d(h, fb.pool); err != nil {
			return err
		}
		for _, layer := range fb.blocks {
			for _, blk := range layer {
				if h, err = blk.forward(h); err != nil {
					return err
				}
			}
		}
		out = h
		return nil
	})
	return out, err
}

func (b *foldedBlock) forward(x *torch.Tensor) (*torch.Tensor, error) {
	h := x
	var err error
	for i, c := range b.convs {
		if h, err = c.forward(h); err != nil {
			return nil, err
		}
		if i < len(b.convs)-1 {
			if err = h.Relu_(); err != nil {
				return nil, err
			}
		}
	}
	identity := x
	if b.down != nil {
		if identity, err = b.down.forward(x); err != nil {
			return nil, err
		}
	}
	if err = h.Add_(identity, 1); err != nil {
		return nil, err
	}
	return h, h.Relu_()
}
