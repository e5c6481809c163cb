package finetune

import (
	"math"

	"github.com/finetune-go/finetune/torch/optim"
)

// LRFactor returns the learning-rate multiplier of a schedule at a point
// of a stage: step is the optimizer step (0-based), total the stage's
// number of steps, perEpoch the steps of one epoch.
func LRFactor(c TrainConfig, step, total, perEpoch int) float64 {
	return lrSchedule(c, total, perEpoch).Factor(step)
}

// lrSchedule is train.schedule for a stage of total steps, perEpoch of
// them an epoch.
func lrSchedule(c TrainConfig, total, perEpoch int) optim.Schedule {
	switch c.Schedule {
	case "step":
		return optim.StepDecay{Every: perEpoch * c.StepEvery, Gamma: c.StepGamma}
	case "cosine":
		return optim.Cosine{Warmup: int(math.Round(c.WarmupEpochs * float64(perEpoch))), Total: total}
	case "onecycle":
		return optim.OneCycle{Total: total}
	}
	return optim.Constant{}
}
