package finetune

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finetune-go/finetune/internal/testref"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testref.Cleanup()
	os.Exit(code)
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

func bnStats(t *testing.T, m *Model) map[string][]float32 {
	out := map[string][]float32{}
	for _, e := range nn.NamedBuffers(m.Backbone) {
		if strings.HasSuffix(e.Name, "running_mean") || strings.HasSuffix(e.Name, "running_var") {
			out[e.Name] = must[[]float32](t)(e.Value.Float32s())
		}
	}
	return out
}

// TestBatchNormModes checks each mode on the tensors: which statistics
// normalise in training and whether the running ones move.
func TestBatchNormModes(t *testing.T) {
	torch.ManualSeed(5)
	x := must[*torch.Tensor](t)(torch.Randn([]int64{4, 3, 32, 32}))
	x = must[*torch.Tensor](t)(must[*torch.Tensor](t)(x.MulScalar(3)).AddScalar(1)).Keep()
	features := func(m *Model) []float32 {
		s := torch.NewScope()
		defer s.Close()
		var f []float32
		require.NoError(t, torch.NoGrad(func() error {
			f = must[[]float32](t)(must[*torch.Tensor](t)(m.Features(x)).Float32s())
			return nil
		}))
		return f
	}
	build := func(mode string) *Model {
		torch.ManualSeed(9)
		m := must[*Model](t)(NewModel("resnet18", HeadConfig{Pooling: "avg"}, 2, 32))
		require.NoError(t, m.SetBNMode(mode))
		return m
	}
	reference := build("train")
	reference.Train(false)
	evalOut := features(reference)
	reference.Train(true)
	batchOut := features(reference) // training-mode BN: batch statistics
	nn.Free(reference)

	cases := []struct {
		mode          string
		trainingOut   []float32
		statsMove     bool
		bnTrainingNow bool
	}{
		{"frozen", evalOut, false, false},
		{"adapt", evalOut, false, false},
		{"train", batchOut, true, true},
		{"legacy", batchOut, false, true},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			m := build(c.mode)
			defer nn.Free(m)
			before := bnStats(t, m)
			m.Train(true)
			require.Equal(t, c.bnTrainingNow, m.ResNet().BN1.Training(), "BN mode while the model trains")
			require.True(t, m.Head.Training(), "the head trains whatever the BN mode")
			require.InDeltaSlice(t, toF64(c.trainingOut), toF64(features(m)), 1e-5, "normalisation in training")
			after := bnStats(t, m)
			if c.statsMove {
				require.NotEqual(t, before, after)
			} else {
				require.Equal(t, before, after, "running statistics changed")
			}
			m.Train(false)
			require.False(t, m.ResNet().BN1.Training())
			if !c.statsMove {
				require.InDeltaSlice(t, toF64(evalOut), toF64(features(m)), 1e-5, "inference uses the stored statistics")
			}
		})
	}
}

func toF64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestFreezeAndBNModeAreIndependent: freezing never moves a mode, a mode
// never moves freezing.
func TestFreezeAndBNModeAreIndependent(t *testing.T) {
	m := must[*Model](t)(NewModel("resnet18", HeadConfig{Pooling: "avg"}, 2, 32))
	defer nn.Free(m)
	require.NoError(t, m.SetBNMode("frozen"))
	m.Train(true)
	require.NoError(t, m.Freeze("layer3", "follow"))
	require.False(t, m.ResNet().Layer[3].Base().Child("0").Base().Child("bn1").Base().Training())
	require.True(t, m.ResNet().Layer[3].Base().Child("0").Base().Child("conv1").Base().Training())
	require.True(t, m.ResNet().Layer[3].Base().Child("0").(*models.Block).Convs[0].Parameter("weight").RequiresGrad())
	require.False(t, m.ResNet().Layer[2].Base().Child("0").(*models.Block).Convs[0].Parameter("weight").RequiresGrad())
	require.NoError(t, m.SetBNMode("train"))
	require.True(t, m.ResNet().BN1.Training())
	require.False(t, m.ResNet().BN1.Parameter("weight").RequiresGrad(), "a BN mode unfroze a parameter")
	require.NoError(t, m.Freeze("all", "train"))
	require.True(t, m.ResNet().BN1.Parameter("weight").RequiresGrad(), "bn_affine: train")
	require.False(t, m.ResNet().Conv1.Parameter("weight").RequiresGrad())
	require.True(t, m.ResNet().BN1.Training(), "freezing changed a mode")
	require.ErrorContains(t, m.Freeze("layer7", "follow"), `"layer7" is not a freeze point of resnet18: one of none, stem, layer1`)
}

// TestAdaptBNMatchesPyTorch compares AdaBN with torch.optim.swa_utils.
// update_bn over the same images, contiguous as PyTorch's and in the
// channels-last layout a run's AdaBN pass gives its images
// (placement.inference), to float32's rounding.
func TestAdaptBNMatchesPyTorch(t *testing.T) {
	dir := testref.Dir(t, "adabn.py")
	ref := map[string]*torch.Tensor{}
	for _, e := range must[[]nn.Named[*torch.Tensor]](t)(nn.ReadStateDict(filepath.Join(dir, "adabn.safetensors"))) {
		ref[e.Name] = e.Value
	}
	for _, tc := range []struct {
		at  placement
		tol float64 // of the largest statistic of the layer
	}{{placement{}, 0}, {placement{}.inference(), 1e-4}} {
		m := must[*Model](t)(NewModel("resnet18", HeadConfig{Pooling: "avg"}, 2, 32))
		_, err := models.LoadWeights(context.Background(), m.Backbone, filepath.Join(dir, "resnet18.pth"), nil)
		require.NoError(t, err)
		require.NoError(t, m.SetBNMode("adapt"))
		images := func(yield func(*torch.Tensor, error) bool) {
			for i := 0; ref["batch"+string(rune('0'+i))] != nil; i++ {
				if !yield(tc.at.input(ref["batch"+string(rune('0'+i))])) {
					return
				}
			}
		}
		require.NoError(t, AdaptBN(context.Background(), m, images))
		require.False(t, m.ResNet().BN1.Training(), "adapted statistics are then frozen")
		n := 0
		worst := 0.0
		for _, e := range nn.NamedBuffers(m.Backbone) {
			want := ref[e.Name]
			require.NotNil(t, want, e.Name)
			w, got := must[[]float64](t)(want.Float64s()), must[[]float64](t)(e.Value.Float64s())
			scale := 0.0
			for _, v := range w {
				scale = max(scale, math.Abs(v))
			}
			for i := range w {
				worst = max(worst, math.Abs(w[i]-got[i])/scale)
			}
			require.InDeltaSlice(t, w, got, max(2e-5, tc.tol*scale), "%v: %s", tc.at, e.Name)
			n++
		}
		t.Logf("%v: worst difference %.2g of a layer's largest statistic", tc.at, worst)
		require.Equal(t, 60, n, "20 BatchNorm layers × 3 buffers")
		require.Equal(t, 0.1, *m.ResNet().BN1.Config.Momentum, "momentum restored after the pass")
		nn.Free(m)
	}
}
