package finetune

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// TestFreezeGroupsPerFamily checks, for a network of each family, which
// backbone parameters train after Freeze: exactly those under the
// prefixes listed (state-dict names under "backbone.").
func TestFreezeGroupsPerFamily(t *testing.T) {
	for _, c := range []struct {
		arch, point string
		size        int
		trains      []string
	}{
		{"resnet18", "layer3", 32, []string{"layer4."}},
		{"resnet18", "none", 32, []string{""}},
		{"mobilenet_v3_small", "all", 32, nil},
		// The pooled features' own layers (here the hidden Linear) train
		// unless everything is frozen.
		{"mobilenet_v3_small", "stage4", 32, []string{"features.12.", "classifier.0."}},
		{"efficientnet_b0", "stage6", 32, []string{"features.7.", "features.8."}},
		{"regnet_y_400mf", "stem", 32, []string{"trunk_output."}},
		// The default's layer2 is the stage before the last two.
		{"convnext_tiny", "layer2", 32, []string{"features.4.", "features.5.", "features.6.", "features.7.", "classifier.0."}},
		{"swin_t", "stage3", 32, []string{"features.6.", "features.7.", "norm."}},
		{"vit_b_16", "block11", 224, []string{"encoder.layers.encoder_layer_11.", "encoder.ln."}},
		// The class token and position embedding freeze with the patch
		// projection.
		{"vit_b_16", "embed", 224, []string{"encoder.layers.", "encoder.ln."}},
	} {
		t.Run(c.arch+"/"+c.point, func(t *testing.T) {
			m := must[*Model](t)(NewModel(c.arch, HeadConfig{Pooling: "avg"}, 2, c.size))
			defer m.Close()
			require.NoError(t, m.Freeze(c.point, "follow"))
			for _, p := range nn.NamedParameters(m.Backbone) {
				want := false
				for _, prefix := range c.trains {
					want = want || strings.HasPrefix(p.Name, prefix)
				}
				require.Equal(t, want, p.Value.RequiresGrad(), p.Name)
			}
			_, trainable := nn.CountParameters(m.Head)
			require.Positive(t, trainable)
		})
	}
	m := must[*Model](t)(NewModel("efficientnet_b0", HeadConfig{Pooling: "avg"}, 2, 32))
	defer m.Close()
	require.EqualError(t, m.Freeze("layer3", "follow"), `freeze: "layer3" is not a freeze point of efficientnet_b0: one of `+
		`none, stem, stage1, stage2, stage3, stage4, stage5, stage6, stage7, lastconv, all`)
	_, err := NewModel("convnext_tiny", HeadConfig{Pooling: "max"}, 2, 32)
	require.ErrorContains(t, err, "model.head.pooling: max pools a ResNet's layer4; convnext_tiny pools its features")
	x := must[*torch.Tensor](t)(torch.Zeros([]int64{1, 3, 32, 32}))
	defer x.Free()
	_, err = m.GradCAM(x, []int{0})
	require.EqualError(t, err, "grad-cam: the maps are layer4's, a ResNet's; efficientnet_b0 has none")
}

// TestAdaBNBeyondResNets: train.batchnorm: adapt re-estimates the
// statistics of a BatchNorm network of another family, which the
// stages then keep.
func TestAdaBNBeyondResNets(t *testing.T) {
	dir := t.TempDir()
	writeShapes(t, filepath.Join(dir, "train"), 4, 32, 1)
	cfg := tinyConfig(t, filepath.Join(dir, "train"))
	cfg.Model.Arch = "mobilenet_v3_small"
	cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all", BackboneLRMult: 0.1}}
	cfg.Train.BatchNorm = "adapt"
	res, err := Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	defer res.Model.Close()
	require.Equal(t, "adapt", res.BatchNorm)
	for _, e := range nn.NamedBuffers(res.Model.Backbone) {
		if strings.HasSuffix(e.Name, "running_var") {
			v := must[[]float32](t)(e.Value.Float32s())
			require.NotEqual(t, float32(1), v[0], "%s kept its initial statistics", e.Name)
		}
	}
}

// TestLayerNormBatchNorm: a network without BatchNorm takes
// train.batchnorm: auto only, which the run resolves to none, saying why.
func TestLayerNormBatchNorm(t *testing.T) {
	dir := t.TempDir()
	writeShapes(t, filepath.Join(dir, "train"), 4, 32, 1)
	cfg := tinyConfig(t, filepath.Join(dir, "train"))
	cfg.Model.Arch = "convnext_tiny"
	cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all", BackboneLRMult: 0.1}}
	for _, mode := range []string{"frozen", "adapt", "train", "legacy"} {
		cfg.Train.BatchNorm = mode
		require.ErrorContains(t, cfg.Validate(), "train.batchnorm: "+mode+", but convnext_tiny has no BatchNorm layers")
	}
	cfg.Train.BatchNorm = "auto"
	res, err := Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	defer res.Model.Close()
	require.Equal(t, "none", res.BatchNorm)
	require.Contains(t, res.Plan.Decisions, Decision{Key: "train.batchnorm", Value: "none",
		Reason: "convnext_tiny has no BatchNorm layers: LayerNorm normalises each image by itself, nothing to keep, adapt or measure"})
}
