package models_test

import (
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
	"github.com/stretchr/testify/require"
)

// TestFusedMatchesEval: folding BatchNorm into the convolutions changes no
// output, in either memory format.
func TestFusedMatchesEval(t *testing.T) {
	for _, arch := range []string{"resnet18", "resnet50"} {
		torch.ManualSeed(2)
		b := must[*models.ResNet](t)(models.New(arch, 0))
		// Non-trivial statistics and affine parameters, as pretrained.
		require.NoError(t, torch.NoGrad(func() error {
			for _, e := range nn.StateDict(b) {
				if e.Value.DType() != torch.Float32 || e.Value.Dim() != 1 {
					continue
				}
				if err := e.Value.Uniform_(0.5, 1.5, nil); err != nil {
					return err
				}
			}
			return nil
		}))
		nn.Train(b, false)
		x := must[*torch.Tensor](t)(torch.Randn([]int64{2, 3, 64, 64}))
		var want []float32
		require.NoError(t, torch.NoGrad(func() error {
			f, err := b.Features(x, "layer4")
			want = must[[]float32](t)(f["layer4"].Float32s())
			return err
		}))
		for _, format := range []torch.MemoryFormat{torch.ContiguousFormat, torch.ChannelsLast} {
			f := must[*models.Fused](t)(models.Fuse(b, format))
			got := must[[]float32](t)(must[*torch.Tensor](t)(f.Layer4(x)).Float32s())
			require.Len(t, got, len(want))
			scale := 0.0
			for _, v := range want {
				scale = max(scale, float64(v))
			}
			for i := range want {
				require.InDelta(t, want[i], got[i], 1e-4*scale, "%s format %d element %d", arch, format, i)
			}
			f.Free()
		}
		nn.Free(b)
	}
}

// TestFuseRejectsForeignBlocks: a layer holding something other than a
// residual block is an error naming it.
func TestFuseRejectsForeignBlocks(t *testing.T) {
	b := must[*models.ResNet](t)(models.New("resnet18", 0))
	defer nn.Free(b)
	b.Layer[2].Append(nn.NewReLU(false))
	_, err := models.Fuse(b, torch.ContiguousFormat)
	require.ErrorContains(t, err, "layer3.2: *nn.ReLU is not a residual block")
}

// TestFusePrefixStopsAtItsDepth: a fused prefix computes the backbone's
// map after its last layer, and refuses to run past it.
func TestFusePrefixStopsAtItsDepth(t *testing.T) {
	torch.ManualSeed(3)
	b := must[*models.ResNet](t)(models.New("resnet18", 0))
	defer nn.Free(b)
	nn.Train(b, false)
	x := must[*torch.Tensor](t)(torch.Randn([]int64{2, 3, 64, 64}))
	for depth, stage := range []string{"stem", "layer1", "layer2", "layer3"} {
		f := must[*models.Fused](t)(models.FusePrefix(b, torch.ChannelsLast, depth))
		var want []float32
		require.NoError(t, torch.NoGrad(func() error {
			m, err := b.Features(x, stage)
			want = must[[]float32](t)(m[stage].Float32s())
			return err
		}))
		got := must[*torch.Tensor](t)(f.Through(x, depth))
		require.False(t, got.RequiresGrad())
		require.InDeltaSlice(t, want, must[[]float32](t)(got.Float32s()), 1e-4, stage)
		_, err := f.Through(x, depth+1)
		require.ErrorContains(t, err, "residual layers")
		f.Free()
	}
}
