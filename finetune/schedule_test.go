package finetune

import (
	"testing"

	"github.com/finetune-go/finetune/torch/optim"
	"github.com/stretchr/testify/require"
)

// TestLRSchedule: train.schedule and its settings, in epochs, become the
// stage's schedule in steps (the values are optim's, tested there).
func TestLRSchedule(t *testing.T) {
	c := Defaults().Train
	c.WarmupEpochs, c.StepEvery, c.StepGamma = 1.5, 3, 0.5
	for _, tc := range []struct {
		schedule string
		want     optim.Schedule
	}{
		{"constant", optim.Constant{}},
		{"step", optim.StepDecay{Every: 30, Gamma: 0.5}},
		{"cosine", optim.Cosine{Warmup: 15, Total: 100}},
		{"onecycle", optim.OneCycle{Total: 100}},
	} {
		c.Schedule = tc.schedule
		require.Equal(t, tc.want, lrSchedule(c, 100, 10), tc.schedule)
	}
	c.Schedule = "cosine"
	require.Equal(t, optim.Cosine{Warmup: 15, Total: 100}.Factor(57), LRFactor(c, 57, 100, 10))
}
