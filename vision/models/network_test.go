package models_test

import (
	"strings"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
	"github.com/stretchr/testify/require"
)

func TestBuild(t *testing.T) {
	for _, c := range []struct {
		name       string
		numClasses int64
		built      bool
		prefix     string
		featureDim int64
	}{
		{"resnet18", 10, true, "fc.", 512},
		{"resnet50", 0, false, "fc.", 2048},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := must[models.Network](t)(models.Build(c.name, c.numClasses))
			defer nn.Free(m)
			require.Equal(t, c.name, m.ArchName())
			prefix, built := m.Classifier()
			require.Equal(t, c.prefix, prefix)
			require.Equal(t, c.featureDim, m.FeatureDim())
			require.Equal(t, c.built, built)
			require.Equal(t, "pool", m.StageNames()[len(m.StageNames())-1])
			require.Contains(t, models.Networks(), c.name)
		})
	}
	_, err := models.Build("resnet19", 2)
	require.ErrorContains(t, err, `unknown architecture "resnet19"`)
}

func TestStageParameters(t *testing.T) {
	for _, c := range []struct {
		name  string
		first []string // some names of the first stage
		last  string   // a name of the stage before "pool"
	}{
		{"resnet18", []string{"conv1.weight", "bn1.bias"}, "layer4.1.conv2.weight"},
		{"mobilenet_v3_small", []string{"features.0.0.weight"}, "features.12.0.weight"},
		{"convnext_tiny", []string{"features.0.0.weight"}, "features.7.2.block.0.weight"},
		{"vit_b_16", []string{"class_token", "conv_proj.weight", "encoder.pos_embedding"}, "encoder.layers.encoder_layer_11.ln_1.weight"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := must[models.Network](t)(models.Build(c.name, 3))
			defer nn.Free(m)
			groups := must[[]nn.Named[[]string]](t)(models.StageParameters(m))
			require.Equal(t, m.StageNames(), namesOf(groups))
			for _, f := range c.first {
				require.Contains(t, groups[0].Value, f)
			}
			require.Contains(t, groups[len(groups)-2].Value, c.last)
			classifier, _ := m.Classifier()
			seen := map[string]bool{}
			for _, g := range groups {
				for _, p := range g.Value {
					require.False(t, seen[p], "%s in two stages", p)
					seen[p] = true
				}
			}
			for _, p := range nn.NamedParameters(m) {
				require.Equal(t, !strings.HasPrefix(p.Name, classifier), seen[p.Name], p.Name)
			}
		})
	}
	require.True(t, models.HasBatchNorm("efficientnet_b0"))
	require.False(t, models.HasBatchNorm("swin_t"))
}

func namesOf[T any](xs []nn.Named[T]) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.Name
	}
	return out
}
