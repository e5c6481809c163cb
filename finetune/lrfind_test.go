package finetune

import (
	"context"
	"slices"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// TestFindLRRestoresTheModel: after a range test that trains the whole
// network with BatchNorm on batch statistics, every parameter and
// statistic is bit for bit what it was, and so are the parameters that
// train and the model's mode.
func TestFindLRRestoresTheModel(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 6))
	cfg.Train.BatchNorm = "train"
	cfg.Stages = []Stage{{Name: "ft", Epochs: 1, Freeze: "none", BackboneLRMult: 1}}
	m := must[*Model](t)(NewModel("resnet18", cfg.Model.Head, 2, cfg.Data.ImageSize))
	defer m.Close()
	require.NoError(t, m.SetBNMode("train"))
	require.NoError(t, m.Freeze("layer3", "follow"))
	m.Train(false)
	before := stateBytes(t, m)
	trains := func() map[string]bool {
		out := map[string]bool{}
		for _, p := range nn.NamedParameters(m) {
			out[p.Name] = p.Value.RequiresGrad()
		}
		return out
	}
	wasTraining := trains()
	var steps int
	f, err := FindLR(context.Background(), m, cfg, LRFindOptions{Steps: 12, Observer: func(e Event) {
		if e.Kind == EventStep {
			steps++
		}
	}})
	require.NoError(t, err)
	require.Len(t, f.LRs, steps)
	require.InDelta(t, 1e-7, f.LRs[0], 1e-20)
	require.Equal(t, before, stateBytes(t, m))
	require.Equal(t, wasTraining, trains())
	require.False(t, m.Training())
}

// TestFindLRSuggestsAFastRate: on a toy problem (a linear head on fixed
// features) the suggested rate brings the loss lower in a few steps than
// rates a hundred times lower or higher: it is in the range where the
// loss falls fastest.
func TestFindLRSuggestsAFastRate(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 16))
	cfg.Model.Head.Dropout = 0
	cfg.Train.Optimizer, cfg.Train.Momentum = "sgd", 0.9
	cfg.Augment.Enabled = false
	torch.ManualSeed(1) // the backbone's random weights: the toy problem
	m := must[*Model](t)(NewModel("resnet18", cfg.Model.Head, 2, cfg.Data.ImageSize))
	defer m.Close()
	require.NoError(t, m.SetBNMode("frozen"))
	f, err := FindLR(context.Background(), m, cfg, LRFindOptions{Steps: 120})
	require.NoError(t, err)
	require.True(t, f.Diverged, "a rate of 10 diverges: %v", f.Smoothed)
	lr := f.Suggested
	require.Greater(t, lr, 1e-6)
	// The lowest smoothed loss a few steps at a constant rate reach (a
	// "range" too narrow to grow; a test stopped by divergence keeps the
	// lowest it reached before).
	reached := func(lr float64) float64 {
		g, err := FindLR(context.Background(), m, cfg, LRFindOptions{MinLR: lr, MaxLR: lr * (1 + 1e-9), Steps: 24})
		require.NoError(t, err)
		return slices.Min(g.Smoothed)
	}
	at, slow, fast := reached(lr), reached(lr/100), reached(lr*100)
	t.Logf("suggested %g: loss %.4f; /100: %.4f; ×100: %.4f", lr, at, slow, fast)
	require.Less(t, at, slow)
	require.Less(t, at, fast)
}
