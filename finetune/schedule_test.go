package finetune

import (
	"context"
	"math"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

func TestLRFactor(t *testing.T) {
	c := Defaults().Train
	cases := []struct {
		name                  string
		schedule              string
		step, total, perEpoch int
		warmup                float64
		want                  float64
	}{
		{"constant", "constant", 50, 100, 10, 0, 1},
		{"step before the first decay", "step", 99, 300, 10, 0, 1},
		{"step after one decay", "step", 100, 300, 10, 0, 0.1},
		{"step after two decays", "step", 250, 300, 10, 0, 0.01},
		{"cosine warmup start", "cosine", 0, 100, 10, 1, 0.1},
		{"cosine warmup end", "cosine", 9, 100, 10, 1, 1},
		{"cosine middle", "cosine", 55, 100, 10, 1, 0.5},
		{"cosine end", "cosine", 100, 100, 10, 1, 0},
		{"onecycle start", "onecycle", 0, 100, 10, 0, 1.0 / 25},
		{"onecycle peak", "onecycle", 30, 100, 10, 0, 1},
		{"onecycle end", "onecycle", 100, 100, 10, 0, 1.0 / 25 / 1e4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.Schedule, c.WarmupEpochs = tc.schedule, tc.warmup
			require.InDelta(t, tc.want, LRFactor(c, tc.step, tc.total, tc.perEpoch), 1e-9)
		})
	}
}

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
