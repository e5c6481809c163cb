package finetune

import "math"

// LRFactor returns the learning-rate multiplier of a schedule at a point
// of a stage: step is the optimizer step (0-based), total the stage's
// number of steps, perEpoch the steps of one epoch.
func LRFactor(c TrainConfig, step, total, perEpoch int) float64 {
	switch c.Schedule {
	case "step":
		return math.Pow(c.StepGamma, float64(step/(perEpoch*c.StepEvery)))
	case "cosine":
		warm := int(math.Round(c.WarmupEpochs * float64(perEpoch)))
		if warm >= total {
			warm = 0
		}
		if step < warm {
			return float64(step+1) / float64(warm)
		}
		p := float64(step-warm) / float64(max(total-warm, 1))
		return 0.5 * (1 + math.Cos(math.Pi*p))
	case "onecycle":
		// torch.optim.lr_scheduler.OneCycleLR's defaults: 30% cosine rise
		// from max/25, then cosine annealing to max/(25·1e4).
		up := 0.3 * float64(total)
		s := float64(step)
		const div, finalDiv = 25.0, 1e4
		if s < up {
			return cosAnneal(1/div, 1, s/up)
		}
		return cosAnneal(1, 1/(div*finalDiv), (s-up)/math.Max(float64(total)-up, 1))
	}
	return 1
}

func cosAnneal(start, end, p float64) float64 {
	return end + (start-end)/2*(1+math.Cos(math.Pi*math.Min(p, 1)))
}
