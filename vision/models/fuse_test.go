package models_test

import (
	"math"
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

// trainedLike makes b, randomly initialised, behave as a trained ResNet
// does: the last BatchNorm of each residual block scales its branch down
// (γ = 0.25; trained networks learn small values there, and a random
// network with γ = 1 is chaotic: a rounding at its input changes its
// ResNet50 features by a third, in PyTorch as here), and every BatchNorm
// holds the statistics of the images x (cumulative averages in training
// mode, as AdaBN computes them), so that activations have a trained
// network's scale.
func trainedLike(t *testing.T, b *models.ResNet, x *torch.Tensor) {
	t.Helper()
	require.NoError(t, torch.NoGrad(func() error {
		for _, layer := range b.Layer {
			for _, c := range layer.Children() {
				blk := c.Value.(*models.Block)
				if err := blk.BNs[len(blk.BNs)-1].Parameter("weight").Fill_(0.25); err != nil {
					return err
				}
			}
		}
		return nn.Walk(b, func(_ string, m nn.Module) error {
			if bn, ok := m.(*nn.BatchNorm); ok {
				bn.Config.Momentum = nil
			}
			return nil
		})
	}))
	nn.Train(b, true)
	require.NoError(t, torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		_, err := b.Features(x, "layer4")
		return err
	}))
	nn.Train(b, false)
}

// pooled returns the average-pooled rows of a feature map, one per image.
func pooled(t *testing.T, fmap *torch.Tensor) [][]float64 {
	t.Helper()
	p := must[*torch.Tensor](t)(fmap.MeanDims([]int64{2, 3}, false))
	v := must[[]float64](t)(p.Float64s())
	n := int(p.Shape()[0])
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = v[i*len(v)/n : (i+1)*len(v)/n]
	}
	return rows
}

// TestFusedBFloat16WithinTolerance: a fused backbone cast to bfloat16
// computes, from float32 images, float32 features within a stated
// tolerance of float32's, and classifies as float32 does.
//
// The bounds: bfloat16 keeps 8 significant bits, a relative rounding of
// 2⁻⁹ ≈ 0.2 % per value. ResNet50 stacks 53 convolutions, each summing
// hundreds to thousands of rounded products (accumulated in float32 by
// oneDNN, so the sums add little), and their errors add up as a random
// walk over the depth: a few percent of relative error in the pooled
// features, in the direction of the vector far less. The test requires,
// per image, a relative error ‖b−f‖/‖f‖ at most 6 % and a cosine
// similarity at least 0.998 (PyTorch's bfloat16 autocast on the same
// kind of network: 3.6 % and 0.9994 at worst over 16 images), and
// the same class from a linear classifier on the features for at least
// 15 images of 16 (a probe's decision flips only for an image at its
// boundary).
func TestFusedBFloat16WithinTolerance(t *testing.T) {
	for _, arch := range []string{"resnet18", "resnet50"} {
		torch.ManualSeed(4)
		b := must[*models.ResNet](t)(models.New(arch, 0))
		trainedLike(t, b, must[*torch.Tensor](t)(torch.Randn([]int64{16, 3, 64, 64})))
		x := must[*torch.Tensor](t)(torch.Randn([]int64{16, 3, 64, 64}))
		f32 := must[*models.Fused](t)(models.Fuse(b, torch.ChannelsLast))
		bf16 := must[*models.Fused](t)(models.Fuse(b, torch.ChannelsLast))
		require.NoError(t, bf16.Cast(torch.BFloat16))
		require.Equal(t, torch.BFloat16, bf16.DType)
		require.Equal(t, torch.BFloat16, bf16.Layer[3][0].Convs[0].Weight.DType())
		want := must[*torch.Tensor](t)(f32.Layer4(x))
		got := must[*torch.Tensor](t)(bf16.Layer4(x))
		require.Equal(t, torch.Float32, got.DType(), "features leave the fused copy in float32")
		wantRows, gotRows := pooled(t, want), pooled(t, got)
		// A linear classifier of 10 classes on the features, its weights
		// drawn at random.
		w := must[*torch.Tensor](t)(torch.Randn([]int64{10, int64(len(wantRows[0]))}))
		classes := func(fmap *torch.Tensor) []int64 {
			p := must[*torch.Tensor](t)(fmap.MeanDims([]int64{2, 3}, false))
			logits := must[*torch.Tensor](t)(torch.Linear(p, w, nil))
			return must[[]int64](t)(must[*torch.Tensor](t)(logits.Argmax(1, false)).Int64s())
		}
		worstRel, worstCos := 0.0, 1.0
		for i, f := range wantRows {
			var dot, ff, gg, dd float64
			for j, v := range f {
				g := gotRows[i][j]
				dot, ff, gg, dd = dot+v*g, ff+v*v, gg+g*g, dd+(v-g)*(v-g)
			}
			worstRel = max(worstRel, math.Sqrt(dd/ff))
			worstCos = min(worstCos, dot/math.Sqrt(ff*gg))
		}
		t.Logf("%s: worst relative error %.4f, worst cosine similarity %.6f", arch, worstRel, worstCos)
		require.LessOrEqual(t, worstRel, 0.06, arch)
		require.GreaterOrEqual(t, worstCos, 0.998, arch)
		agree := 0
		for i, c := range classes(want) {
			if classes(got)[i] == c {
				agree++
			}
		}
		require.GreaterOrEqual(t, agree, 15, "%s: the class of %d images of 16 agrees", arch, agree)
		f32.Free()
		bf16.Free()
		nn.Free(b)
	}
}
