package bench

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
)

// MkldnnBackbone is an experiment for the frozen-backbone path: a ResNet
// backbone with its BatchNorm layers folded into the convolutions (as
// finetune.Fold folds them) whose weights are packed once into oneDNN's
// own layout (aten::mkldnn_reorder_conv2d_weight) and whose activations
// stay in oneDNN's blocked layout from the first convolution to the
// pooling, as torch.utils.mkldnn.to_mkldnn runs a model. It measures what
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
	mb := &MkldnnBackbone{pool: b.MaxPool.Options}
	err := torch.NoGrad(func() error {
		var err error
		if mb.stem, err = packConv(b.Conv1, b.BN1); err != nil {
			return err
		}
		for i, layer := range b.Layer {
			for _, c := range layer.Children() {
				blk, ok := c.Value.(*models.Block)
				if !ok {
					return fmt.Errorf("mkldnn: %T is not a residual block", c.Value)
				}
				var mk mkBlock
				for j, conv := range blk.Convs {
					pc, err := packConv(conv, blk.BNs[j])
					if err != nil {
						return err
					}
					mk.convs = append(mk.convs, pc)
				}
				if blk.Down != nil {
					kids := blk.Down.Children()
					pc, err := packConv(kids[0].Value.(*nn.Conv2d), kids[1].Value.(*nn.BatchNorm))
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
	return mb, err
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

// packConv folds bn into c, w·s and β − μ·s with s = γ/√(σ²+ε), and packs
// the result for oneDNN.
func packConv(c *nn.Conv2d, bn *nn.BatchNorm) (mkConv, error) {
	pc := mkConv{padding: c.Config.Padding[:], stride: orOne(c.Config.Stride), dilation: orOne(c.Config.Dilation),
		groups: max(c.Config.Groups, 1)}
	pc.padding = append([]int64(nil), pc.padding...)
	s := torch.NewScope()
	defer s.Close()
	v, err := bn.Buffer("running_var").AddScalar(bn.Config.Eps)
	if err != nil {
		return pc, err
	}
	if v, err = v.Sqrt(); err != nil {
		return pc, err
	}
	scale, err := bn.Parameter("weight").Div(v)
	if err != nil {
		return pc, err
	}
	sw, err := scale.Reshape(-1, 1, 1, 1)
	if err != nil {
		return pc, err
	}
	w, err := c.Parameter("weight").Mul(sw)
	if err != nil {
		return pc, err
	}
	shift, err := bn.Buffer("running_mean").Mul(scale)
	if err != nil {
		return pc, err
	}
	bias, err := bn.Parameter("bias").Sub(shift)
	if err != nil {
		return pc, err
	}
	if c.Parameter("bias") != nil {
		return pc, fmt.Errorf("mkldnn: convolutions with a bias are not handled")
	}
	if w, err = one(torch.CallOp("aten::to_mkldnn", "", w)); err != nil {
		return pc, err
	}
	if pc.weight, err = one(torch.CallOp("aten::mkldnn_reorder_conv2d_weight", "", w, pc.padding, pc.stride, pc.dilation, pc.groups)); err != nil {
		return pc, err
	}
	if pc.bias, err = one(torch.CallOp("aten::to_mkldnn", "", bias)); err != nil {
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
	h := x
	var err error
	for i := range b.convs {
		if h, err = b.convs[i].forward(h); err != nil {
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
