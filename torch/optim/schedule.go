package optim

import "math"

// A Schedule is a learning-rate schedule: the factor each group's base
// learning rate is multiplied by at an optimizer step, counted from 0. It
// is a pure function of the step, as the lambdas of PyTorch's
// torch.optim.lr_scheduler.LambdaLR are, so a resumed run needs no
// scheduler state: set Groups()[i].LR to base·Factor(step) before each
// Step.
type Schedule interface {
	Factor(step int) float64
}

// Constant keeps the base learning rate.
type Constant struct{}

// Factor returns 1.
func (Constant) Factor(int) float64 { return 1 }

// StepDecay multiplies the learning rate by Gamma every Every steps, as
// StepLR does; an Every below 1 counts as 1.
type StepDecay struct {
	Every int
	Gamma float64
}

// Factor returns Gamma^⌊step/Every⌋.
func (s StepDecay) Factor(step int) float64 {
	return math.Pow(s.Gamma, float64(step/max(s.Every, 1)))
}

// Cosine raises the learning rate linearly over the first Warmup steps,
// from 1/Warmup to 1, then anneals it along a half cosine to 0 at step
// Total, as CosineAnnealingLR with eta_min 0 after a linear warmup. A
// warmup as long as the whole schedule is left out.
type Cosine struct {
	Warmup, Total int
}

// Factor returns the step's factor.
func (c Cosine) Factor(step int) float64 {
	warm := c.Warmup
	if warm >= c.Total {
		warm = 0
	}
	if step < warm {
		return float64(step+1) / float64(warm)
	}
	p := float64(step-warm) / float64(max(c.Total-warm, 1))
	return 0.5 * (1 + math.Cos(math.Pi*p))
}

// OneCycle is the shape of OneCycleLR with its defaults over Total steps,
// as factors of the peak learning rate: a cosine rise over the first 30%
// of the steps from 1/25 to 1, then a cosine anneal to 1/(25·10⁴).
type OneCycle struct {
	Total int
}

// Factor returns the step's factor.
func (o OneCycle) Factor(step int) float64 {
	up := 0.3 * float64(o.Total)
	s := float64(step)
	const div, finalDiv = 25.0, 1e4
	if s < up {
		return cosAnneal(1/div, 1, s/up)
	}
	return cosAnneal(1, 1/(div*finalDiv), (s-up)/math.Max(float64(o.Total)-up, 1))
}

// cosAnneal goes from start to end along a half cosine as p goes from 0
// to 1, and stays at end after.
func cosAnneal(start, end, p float64) float64 {
	return end + (start-end)/2*(1+math.Cos(math.Pi*math.Min(p, 1)))
}
