package finetune

import (
	"context"
	"path/filepath"

	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/stretchr/testify/require"
)

// TestFusedPrefixStepMatchesUnfused: a training step through the fused
// prefix (frozen layers with stored BatchNorm statistics) computes the
// loss and the gradients of every trainable parameter the unfused
// backbone computes; where the prefix is not fixed (BatchNorm on batch
// statistics, nothing frozen) there is no fused copy and the step is the
// unfused one.
func TestFusedPrefixStepMatchesUnfused(t *testing.T) {
	for _, tc := range []struct {
		freeze, bn string
		fused      bool
	}{
		{"layer2", "frozen", true}, {"layer3", "frozen", true},
		{"layer2", "adapt", true}, {"layer3", "adapt", true},
		{"layer3", "train", false}, {"layer3", "legacy", false}, {"none", "frozen", false},
	} {
		name := tc.freeze + "/" + tc.bn
		torch.ManualSeed(5)
		m := must[*Model](t)(NewModel("resnet18", HeadConfig{Pooling: "avg", Init: "random"}, 3, 64))
		// Statistics and affine parameters away from their initial
		// values, as pretrained ones are, so folding them is tested.
		require.NoError(t, torch.NoGrad(func() error {
			for _, e := range nn.StateDict(m.Backbone) {
				if e.Value.DType() == torch.Float32 && e.Value.Dim() == 1 {
					if err := e.Value.Uniform_(0.5, 1.5, nil); err != nil {
						return err
					}
				}
			}
			return nil
		}))
		require.NoError(t, m.SetBNMode(tc.bn))
		require.NoError(t, m.Freeze(tc.freeze, "follow"))
		m.Train(true)
		x := must[*torch.Tensor](t)(torch.Randn([]int64{4, 3, 64, 64}))
		y := must[*torch.Tensor](t)(torch.FromSlice([]int64{0, 1, 2, 0}))
		step := func(features func(*torch.Tensor) (*torch.Tensor, error)) (float64, map[string][]float32) {
			s := torch.NewScope()
			defer s.Close()
			f := must[*torch.Tensor](t)(features(x))
			loss := must[*torch.Tensor](t)(torch.CrossEntropy(must[*torch.Tensor](t)(m.Head.Forward(f)), y, torch.LossOptions{}))
			require.NoError(t, loss.Backward())
			grads := map[string][]float32{}
			for _, p := range nn.NamedParameters(m) {
				g := must[*torch.Tensor](t)(p.Value.Grad())
				if !p.Value.RequiresGrad() {
					require.Nil(t, g, "%s: %s is frozen", name, p.Name)
					continue
				}
				require.NotNil(t, g, "%s: %s", name, p.Name)
				grads[p.Name] = must[[]float32](t)(g.Float32s())
				require.NoError(t, p.Value.ClearGrad())
			}
			return must[float64](t)(loss.Item()), grads
		}
		wantLoss, want := step(m.Features)
		require.NoError(t, m.UseFused(torch.ChannelsLast, torch.Float32))
		require.Equal(t, tc.fused, m.fused != nil, name)
		gotLoss, got := step(m.TrainFeatures)
		require.InEpsilon(t, wantLoss, gotLoss, 1e-4, name)
		require.Equal(t, len(want), len(got), name)
		for p, w := range want {
			scale := 0.0
			for _, v := range w {
				scale = max(scale, float64(abs32(v)))
			}
			require.InDeltaSlice(t, w, got[p], 1e-4*scale+1e-7, "%s: %s", name, p)
		}
		m.StopFused()
		nn.Free(m)
	}
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

// TestPlanSaysHowEachStageRunsTheBackbone: the plan names, stage by
// stage, the part of the backbone run fused without autograd and why.
func TestPlanSaysHowEachStageRunsTheBackbone(t *testing.T) {
	root := shapes(t, 8)
	weights := filepath.Join(t.TempDir(), "backbone.safetensors")
	randomBackbone(t, weights, 5)
	for bn, want := range map[string][]string{
		"frozen": {
			"stage head: stem..layer4 run fused, channels-last, without autograd: frozen with stored BatchNorm statistics",
			"stage ft: stem..layer3 run fused, channels-last, without autograd; layer4 unfused with autograd: " +
				"stem..layer3 frozen with stored BatchNorm statistics, layer4 trains",
			"stage all: stem run fused, channels-last, without autograd; layer1..layer4 unfused with autograd: " +
				"stem frozen with stored BatchNorm statistics, layer1 trains",
		},
		"train": {
			"stage head: unfused, without autograd: frozen, but BatchNorm uses batch statistics (train.batchnorm: train)",
			"stage ft: unfused with autograd: BatchNorm uses batch statistics (train.batchnorm: train)",
			"stage all: unfused with autograd: BatchNorm uses batch statistics (train.batchnorm: train)",
		},
	} {
		cfg := tinyConfig(t, root)
		cfg.Model.Weights = weights
		cfg.Train.BatchNorm = bn
		cfg.Train.StepsPerEpoch = 1
		cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all"}, {Name: "ft", Epochs: 1, Freeze: "layer3", BackboneLRMult: 0.1},
			{Name: "all", Epochs: 1, Freeze: "stem", BackboneLRMult: 0.1}}
		var msgs []string
		res, err := Train(context.Background(), cfg, Options{Observer: func(e Event) { msgs = append(msgs, e.Message) }})
		require.NoError(t, err, bn)
		for _, w := range want {
			require.Contains(t, msgs, w, bn)
		}
		decided := map[string]string{}
		for _, d := range res.Plan.Decisions {
			decided[d.Key] = d.Value
		}
		require.Contains(t, decided["stages[1].backbone"], map[string]string{"frozen": "stem..layer3 run fused", "train": "unfused"}[bn])
		nn.Free(res.Model)
	}
}

// TestBF16FusedCopyIsCastOnce: under bf16 the fused copy of the frozen
// backbone holds bfloat16 weights, cast when the copy is made: feature
// passes use those same tensors, cast nothing again, and hand float32
// features on.
func TestBF16FusedCopyIsCastOnce(t *testing.T) {
	m := must[*Model](t)(NewModel("resnet18", HeadConfig{Pooling: "avg", Init: "random"}, 2, 32))
	defer m.Close()
	require.NoError(t, m.SetBNMode("frozen"))
	require.NoError(t, m.Freeze("all", "follow"))
	m.Train(false)
	require.NoError(t, m.UseFused(torch.ChannelsLast, torch.BFloat16))
	stem, last := m.fused.Stem.Weight, m.fused.Layer[3][1].Convs[1].Weight
	require.Equal(t, torch.BFloat16, stem.DType())
	require.Equal(t, torch.BFloat16, last.DType())
	x := must[*torch.Tensor](t)(torch.Randn([]int64{2, 3, 32, 32}))
	for range 2 {
		f := must[*torch.Tensor](t)(m.FrozenFeatures(must[*torch.Tensor](t)(modelPlacement(m).input(x))))
		require.Equal(t, torch.Float32, f.DType())
		require.Same(t, stem, m.fused.Stem.Weight)
		require.Same(t, last, m.fused.Layer[3][1].Convs[1].Weight)
		require.Equal(t, torch.BFloat16, m.fused.Stem.Weight.DType())
	}
}

// TestBF16ClassifiesAsFP32: a trained model (a tiny one, with a linear
// probe as its head) gives every validation image the class float32
// gives it, but at most one, when its backbone runs in bfloat16, and the
// probe fitted on bf16 features validates within one image of the one
// fitted on float32 features.
func TestBF16ClassifiesAsFP32(t *testing.T) {
	source := shapes(t, 16)
	weights := pretrained(t, source)
	acc := map[string]float64{}
	var (
		model *Model
		nVal  int64
	)
	for _, precision := range []string{"fp32", "bf16"} {
		cfg := tinyConfig(t, source)
		cfg.Model.Weights = weights
		cfg.Train.Precision = precision
		cfg.Recipe = "linear-probe"
		res, err := Train(context.Background(), cfg, Options{})
		require.NoError(t, err, precision)
		acc[precision] = res.Val.Accuracy
		nVal = res.Val.Confusion.Total()
		if precision == "bf16" {
			res.Model.Close()
			continue
		}
		model = res.Model
		defer model.Close()
	}
	require.InDelta(t, acc["fp32"], acc["bf16"], 1/float64(nVal)+1e-9, "validation accuracy, one image of %d", nVal)
	set := must[*data.Dataset](t)(data.ImageFolder(source))
	_, loader, err := evalLoader(Meta{Config: tinyConfig(t, source), Classes: set.Classes}, set)
	require.NoError(t, err)
	defer loader.Close()
	model.Train(false)
	classes := map[torch.DType][]int64{}
	for _, dtype := range []torch.DType{torch.Float32, torch.BFloat16} {
		restore := must[func()](t)(model.useFusedForEval(torch.ChannelsLast, dtype))
		for b, err := range loader.Epoch(context.Background(), 0) {
			require.NoError(t, err)
			s := torch.NewScope()
			f := must[*torch.Tensor](t)(model.FrozenFeatures(must[*torch.Tensor](t)(modelPlacement(model).input(b.Images))))
			logits := must[*torch.Tensor](t)(model.Head.Forward(f))
			classes[dtype] = append(classes[dtype], must[[]int64](t)(must[*torch.Tensor](t)(logits.Argmax(1, false)).Int64s())...)
			s.Close()
			b.Free()
		}
		restore()
	}
	differ := 0
	for i, c := range classes[torch.Float32] {
		if classes[torch.BFloat16][i] != c {
			differ++
		}
	}
	require.Len(t, classes[torch.BFloat16], len(set.Samples))
	require.LessOrEqual(t, differ, 1, "images classified differently in bfloat16, of %d", len(set.Samples))
}
