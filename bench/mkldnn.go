package bench

import (
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/vision/models"
)

// MkldnnBackbone is an experiment for the frozen-backbone path: a ResNet
// backbone with its BatchNorm layers folded into the convolutions (by
// models.Fuse) whose weights are packed once into oneDNN's own layout
// (aten::mkldnn_reorder_conv2d_weight) and whose activations stay in
// oneDNN's blocked layout from the first convolution to the pooling, as torch.utils.mkldnn.to_mkldnn runs a model. It measures what
// the per-call reorders cost the folded backbone: with dense tensors
// oneDNN reorders every convolution's weights on every call, and, in the
// contiguous format, its input and output too.
type MkldnnBackbone struct {
	stem   mkConv
	pool   torch.MaxPool2dOptions
	blocks [4][]mkBlock
}

type mkConv struct {
	weight, bias              *torch.Tensor // oneDNN layout
	padding, stride, dilation []int64
	groups                    int64
}

type mkBlock struct {
	convs []mkConv
	down  *mkConv
}

// FoldMkldnn builds the packed, folded copy of b as it is now.
func FoldMkldnn(b *models.ResNet) (*MkldnnBackbone, error) {
	f, err := models.Fuse(b, torch.ContiguousFormat)
	if err != nil {
		return nil, err
	}
	defer f.Free()
	mb := &MkldnnBackbone{pool: f.Pool}
	err = torch.NoGrad(func() error {
		var err error
		if mb.stem, err = packConv(f.Stem); err != nil {
			return err
		}
		for i, layer := range f.Layer {
			for _, blk := range layer {
				var mk mkBlock
				for _, c := range blk.Convs {
					pc, err := packConv(c)
					if err != nil {
						return err
					}
					mk.convs = append(mk.convs, pc)
				}
				if blk.Down != nil {
					pc, err := packConv(blk.Down)
					if err != nil {
						return err
					}
					mk.down = &pc
				}
				mb.blocks[i] = append(mb.blocks[i], mk)
			}
		}
		return nil
	})
	if err != nil {
		mb.Free()
		return nil, err
	}
	return mb, nil
}

func one(t []*torch.Tensor, err error) (*torch.Tensor, error) {
	if err != nil {
		return nil, err
	}
	return t[0], nil
}

func orOne(v [2]int64) []int64 {
	if v == [2]int64{} {
		return []int64{1, 1}
	}
	return v[:]
}

// packConv packs a folded convolution's weights for oneDNN.
func packConv(c *models.FusedConv) (mkConv, error) {
	o := c.Options
	pc := mkConv{padding: append([]int64(nil), o.Padding[:]...), stride: orOne(o.Stride), dilation: orOne(o.Dilation),
		groups: max(o.Groups, 1)}
	s := torch.NewScope()
	defer s.Close()
	w, err := one(torch.CallOp("aten::to_mkldnn", "", c.Weight))
	if err != nil {
		return pc, err
	}
	if pc.weight, err = one(torch.CallOp("aten::mkldnn_reorder_conv2d_weight", "", w, pc.padding, pc.stride, pc.dilation, pc.groups)); err != nil {
		return pc, err
	}
	if pc.bias, err = one(torch.CallOp("aten::to_mkldnn", "", c.Bias)); err != nil {
		return pc, err
	}
	pc.weight.Keep()
	pc.bias.Keep()
	return pc, nil
}

func (c *mkConv) forward(x *torch.Tensor) (*torch.Tensor, error) {
	return one(torch.CallOp("aten::mkldnn_convolution", "", x, c.weight, c.bias, c.padding, c.stride, c.dilation, c.groups))
}

func (c *mkConv) free() {
	c.weight.Free()
	c.bias.Free()
}

// Free releases the packed weights.
func (mb *MkldnnBackbone) Free() {
	mb.stem.free()
	for _, layer := range mb.blocks {
		for _, blk := range layer {
			for i := range blk.convs {
				blk.convs[i].free()
			}
			if blk.down != nil {
				blk.down.free()
			}
		}
	}
}

// Pooled returns the average-pooled features (N, C), as dense tensors,
// for dense images x, without autograd.
func (mb *MkldnnBackbone) Pooled(x *torch.Tensor) (*torch.Tensor, error) {
	var out *torch.Tensor
	err := torch.NoGrad(func() error {
		h, err := x.Contiguous()
		if err != nil {
			return err
		}
		if h, err = one(torch.CallOp("aten::to_mkldnn", "", h)); err != nil {
			return err
		}
		if h, err = mb.stem.forward(h); err != nil {
			return err
		}
		if err = h.Relu_(); err != nil {
			return err
		}
		if h, err = torch.MaxPool2d(h, mb.pool); err != nil {
			return err
		}
		for _, layer := range mb.blocks {
			for _, blk := range layer {
				if h, err = blk.forward(h); err != nil {
					return err
				}
			}
		}
		if h, err = torch.AdaptiveAvgPool2d(h, 1, 1); err != nil {
			return err
		}
		if h, err = one(torch.CallOp("aten::to_dense", "", h)); err != nil {
			return err
		}
		out, err = h.Flatten(1, -1)
		return err
	})
	return out, err
}

func (b *mkBlock) forward(x *torch.Tensor) (*torch.Tensor, error) {
	var down func(*torch.Tensor) (*torch.Tensor, error)
	if b.down != nil {
		down = b.down.forward
	}
	return models.Residual(x, len(b.convs), func(i int, h *torch.Tensor) (*torch.Tensor, error) {
		return b.convs[i].forward(h)
	}, down)
}
