package models_test

import (
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
