package models

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// Fused is a ResNet backbone for inference only, with every BatchNorm
// folded into the convolution before it, run without autograd in a chosen
// memory format. It computes what the backbone computes up to layer4 in
// evaluation mode, in fewer kernels: a frozen backbone whose BatchNorm
// layers use their stored statistics is pure inference, and this is its
// fast path.
//
// The fields expose the fused layers for backbones of one's own built
// from them (a packed weight layout, another runtime).
type Fused struct {
	Stem *FusedConv // conv1 with bn1
	Pool torch.MaxPool2dOptions
	// Layer are the residual blocks of layer1 to layer4; those after
	// Depth are empty.
	Layer [4][]FusedBlock
	// Depth is the number of residual layers fused: 4 for Fuse.
	Depth int
	// Format is the memory format the weights are stored in and Through
	// computes in.
	Format torch.MemoryFormat
	// DType is the type the weights are stored in and Through computes
	// in: float32 as fused, or what Cast made them.
	DType torch.DType
}

// FusedConv is a convolution with the BatchNorm after it folded in:
// conv(x, w·s) + (β − μ·s) with s = γ/√(σ²+ε), what the two layers compute
// in evaluation mode, in one kernel.
type FusedConv struct {
	Weight, Bias *torch.Tensor
	Options      torch.Conv2dOptions
}

// FusedBlock is a residual block of fused convolutions; Down is nil where
// the block adds its input unchanged.
type FusedBlock struct {
	Convs []*FusedConv
	Down  *FusedConv
}

// Fuse builds the fused copy of m's backbone as it is now, BatchNorm
// statistics and affine parameters included; later changes to m are not
// seen, and m is not changed. The weights are stored in memory format
// format. The caller owns the result and releases it with Free.
func Fuse(m *ResNet, format torch.MemoryFormat) (*Fused, error) {
	return FusePrefix(m, format, 4)
}

// FusePrefix is Fuse for the stem and the first depth residual layers
// only (0 to 4): the frozen part of a backbone whose later layers train.
func FusePrefix(m *ResNet, format torch.MemoryFormat, depth int) (*Fused, error) {
	if depth < 0 || depth > 4 {
		return nil, fmt.Errorf("models: fusing %s: depth %d is not 0 to 4", m.Arch.Name, depth)
	}
	f := &Fused{Pool: m.MaxPool.Options, Depth: depth, Format: format, DType: torch.Float32}
	err := f.build(m)
	if err == nil && format == torch.ChannelsLast {
		for _, c := range f.convs() {
			var w *torch.Tensor
			if w, err = c.Weight.ContiguousAs(torch.ChannelsLast); err != nil {
				break
			}
			c.Weight.Free()
			c.Weight = w.Keep()
		}
	}
	if err != nil {
		f.Free()
		return nil, fmt.Errorf("models: fusing %s: %w", m.Arch.Name, err)
	}
	return f, nil
}

func (f *Fused) build(m *ResNet) error {
	var err error
	if f.Stem, err = fuseConv(m.Conv1, m.BN1); err != nil {
		return err
	}
	for i, layer := range m.Layer[:f.Depth] {
		for _, c := range layer.Children() {
			blk, ok := c.Value.(*Block)
			if !ok {
				return fmt.Errorf("layer%d.%s: %T is not a residual block", i+1, c.Name, c.Value)
			}
			f.Layer[i] = append(f.Layer[i], FusedBlock{})
			fb := &f.Layer[i][len(f.Layer[i])-1]
			for j, conv := range blk.Convs {
				fc, err := fuseConv(conv, blk.BNs[j])
				if err != nil {
					return err
				}
				fb.Convs = append(fb.Convs, fc)
			}
			if blk.Down == nil {
				continue
			}
			kids := blk.Down.Children()
			if len(kids) != 2 {
				return fmt.Errorf("layer%d.%s.downsample: want a convolution and a BatchNorm, got %d modules", i+1, c.Name, len(kids))
			}
			conv, isConv := kids[0].Value.(*nn.Conv2d)
			bn, isBN := kids[1].Value.(*nn.BatchNorm)
			if !isConv || !isBN {
				return fmt.Errorf("layer%d.%s.downsample: want a convolution and a BatchNorm, got %T and %T", i+1, c.Name, kids[0].Value, kids[1].Value)
			}
			if fb.Down, err = fuseConv(conv, bn); err != nil {
				return err
			}
		}
	}
	return nil
}

func fuseConv(c *nn.Conv2d, bn *nn.BatchNorm) (*FusedConv, error) {
	f := &FusedConv{Options: torch.Conv2dOptions{Stride: c.Config.Stride, Padding: c.Config.Padding,
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
		if f.Weight, err = w.Mul(sw); err != nil {
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
		f.Bias = shift
		f.Weight.Keep()
		f.Bias.Keep()
		return nil
	})
	if err != nil {
		return nil, err // the scope freed what was made
	}
	return f, nil
}

// Forward convolves x with the fused weights.
func (c *FusedConv) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return torch.Conv2d(x, c.Weight, c.Bias, c.Options)
}

// Forward computes relu(F(x) + identity(x)), as Block.Forward in
// evaluation mode.
func (b *FusedBlock) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	var down func(*torch.Tensor) (*torch.Tensor, error)
	if b.Down != nil {
		down = b.Down.Forward
	}
	return Residual(x, len(b.Convs), func(i int, h *torch.Tensor) (*torch.Tensor, error) {
		return b.Convs[i].Forward(h)
	}, down)
}

// Cast converts the fused weights to dtype, once, so that Through
// computes in dtype without converting a weight per call: BFloat16 runs
// the convolutions on the bfloat16 units of CPUs that have them (oneDNN's
// AMX and AVX512-BF16 kernels) and of GPUs. Through still takes and
// returns float32.
func (f *Fused) Cast(dtype torch.DType) error {
	if dtype == f.DType {
		return nil
	}
	for _, c := range f.convs() {
		for _, t := range []**torch.Tensor{&c.Weight, &c.Bias} {
			// The conversion keeps the weight's memory format.
			v, err := (*t).ToDType(dtype)
			if err != nil {
				return fmt.Errorf("models: casting the fused backbone to %v: %w", dtype, err)
			}
			(*t).Free()
			*t = v.Keep()
		}
	}
	f.DType = dtype
	return nil
}

// convs returns every fused convolution built so far.
func (f *Fused) convs() []*FusedConv {
	var out []*FusedConv
	if f.Stem != nil {
		out = append(out, f.Stem)
	}
	for _, layer := range f.Layer {
		for _, blk := range layer {
			out = append(out, blk.Convs...)
			if blk.Down != nil {
				out = append(out, blk.Down)
			}
		}
	}
	return out
}

// Free releases the fused weights.
func (f *Fused) Free() {
	for _, c := range f.convs() {
		c.Weight.Free()
		c.Bias.Free()
	}
}

// Layer4 returns the last feature map for images x: Through(x, 4).
func (f *Fused) Layer4(x *torch.Tensor) (*torch.Tensor, error) {
	return f.Through(x, 4)
}

// Through returns the feature map after the stem and the first depth
// residual layers (at most f.Depth) for images x, in f.Format, computed
// without autograd in f.DType; x and the map are float32 whatever f.DType,
// so what follows (trainable layers, a head, a probe) needs no cast. The
// map belongs to the current scope, as the result of any operation does.
func (f *Fused) Through(x *torch.Tensor, depth int) (*torch.Tensor, error) {
	if depth < 0 || depth > f.Depth {
		return nil, fmt.Errorf("models: the fused backbone has %d residual layers, not %d", f.Depth, depth)
	}
	var out *torch.Tensor
	err := torch.NoGrad(func() error {
		h := x
		var err error
		// Cast before changing the layout: the copy moves half the bytes.
		if f.DType != x.DType() {
			if h, err = h.ToDType(f.DType); err != nil {
				return err
			}
		}
		if h, err = h.ContiguousAs(f.Format); err != nil {
			return err
		}
		if h, err = f.Stem.Forward(h); err != nil {
			return err
		}
		if err = h.Relu_(); err != nil {
			return err
		}
		if h, err = torch.MaxPool2d(h, f.Pool); err != nil {
			return err
		}
		for _, layer := range f.Layer[:depth] {
			for i := range layer {
				if h, err = layer[i].Forward(h); err != nil {
					return err
				}
			}
		}
		if h.DType() != torch.Float32 {
			if h, err = h.ToDType(torch.Float32); err != nil {
				return err
			}
		}
		out = h
		return nil
	})
	return out, err
}
