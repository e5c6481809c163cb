package optim_test

import (
	"testing"

	"github.com/finetune-go/finetune/torch/optim"
	"github.com/stretchr/testify/require"
)

func TestSchedules(t *testing.T) {
	cases := []struct {
		name     string
		schedule optim.Schedule
		step     int
		want     float64
	}{
		{"constant", optim.Constant{}, 50, 1},
		{"step before the first decay", optim.StepDecay{Every: 100, Gamma: 0.1}, 99, 1},
		{"step after one decay", optim.StepDecay{Every: 100, Gamma: 0.1}, 100, 0.1},
		{"step after two decays", optim.StepDecay{Every: 100, Gamma: 0.1}, 250, 0.01},
		{"step every 0 counts as 1", optim.StepDecay{Gamma: 0.5}, 3, 0.125},
		{"cosine warmup start", optim.Cosine{Warmup: 10, Total: 100}, 0, 0.1},
		{"cosine warmup end", optim.Cosine{Warmup: 10, Total: 100}, 9, 1},
		{"cosine middle", optim.Cosine{Warmup: 10, Total: 100}, 55, 0.5},
		{"cosine end", optim.Cosine{Warmup: 10, Total: 100}, 100, 0},
		{"cosine without warmup", optim.Cosine{Total: 100}, 0, 1},
		{"cosine warmup as long as the schedule is left out", optim.Cosine{Warmup: 100, Total: 100}, 50, 0.5},
		{"onecycle start", optim.OneCycle{Total: 100}, 0, 1.0 / 25},
		{"onecycle peak", optim.OneCycle{Total: 100}, 30, 1},
		{"onecycle end", optim.OneCycle{Total: 100}, 100, 1.0 / 25 / 1e4},
		{"onecycle after the end", optim.OneCycle{Total: 100}, 120, 1.0 / 25 / 1e4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.InDelta(t, tc.want, tc.schedule.Factor(tc.step), 1e-9)
		})
	}
}
