package finetune

import (
	"fmt"
	"strings"
	"time"

	"github.com/finetune-go/finetune/internal/plural"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// estimateBatch is at most how many images the estimate times a step
// on: the time of a batch grows with its size about linearly from here,
// and a smaller batch keeps the estimate a small part of the plan.
const estimateBatch = 8

// estimateStage estimates the seconds stage ps (index i, frozen as the
// model now is) takes and records how: it times, on constant images, one
// training step of the stage's form (from cached features, from cached
// activations, or through the backbone) and what the stage computes per
// epoch (validation, the train accuracy) and once (cached features and
// activations), each after a warm-up call. Decoding the images is not
// counted: the loaders overlap it with the computation.
func (r *run) estimateStage(plan *Plan, i int, ps *PlanStage) error {
	cfg := r.cfg
	b := min(cfg.Data.BatchSize, estimateBatch)
	scale := float64(cfg.Data.BatchSize) / float64(b)
	wasTraining := r.m.Training()
	defer r.m.Train(wasTraining)
	defer r.m.StopFused()
	// Evaluation mode: the timing moves no BatchNorm statistics and draws
	// no dropout mask.
	r.m.Train(false)
	if err := r.m.UseFused(torch.ChannelsLast, r.at.frozenType()); err != nil {
		return err
	}
	s := torch.NewScope()
	defer s.Close()
	side := int64(cfg.Data.ImageSize)
	x, err := torch.Full([]int64{int64(b), 3, side, side}, 0.5)
	if err == nil {
		x, err = r.at.input(x)
	}
	if err != nil {
		return err
	}
	timed := func(f func() (*torch.Tensor, error)) (float64, *torch.Tensor, error) {
		var out *torch.Tensor
		var secs float64
		for range 2 {
			start := time.Now()
			err := r.at.compute(func() error {
				var err error
				out, err = f()
				return err
			})
			if err != nil {
				return 0, nil, err
			}
			// Reading a value waits for a device that computes
			// asynchronously (CUDA).
			if err := readOne(out); err != nil {
				return 0, nil, err
			}
			secs = time.Since(start).Seconds() * scale
		}
		return secs, out, nil
	}
	noGrad := func(f func(*torch.Tensor) (*torch.Tensor, error), in *torch.Tensor) func() (*torch.Tensor, error) {
		return func() (out *torch.Tensor, err error) {
			err = torch.NoGrad(func() error {
				out, err = f(in)
				return err
			})
			return out, err
		}
	}
	// A step: the forward from in, the head, a loss and its backward.
	step := func(forward func(*torch.Tensor) (*torch.Tensor, error), in *torch.Tensor) func() (*torch.Tensor, error) {
		return func() (*torch.Tensor, error) {
			f, err := forward(in)
			if err != nil {
				return nil, err
			}
			logits, err := r.m.Head.Forward(f)
			if err != nil {
				return nil, err
			}
			loss, err := logits.Sum()
			if err != nil {
				return nil, err
			}
			if err := loss.Backward(); err != nil {
				return nil, err
			}
			for _, p := range nn.Trainable(r.m) {
				if err := p.Value.ClearGrad(); err != nil {
					return nil, err
				}
			}
			return loss, nil
		}
	}
	trainBatches, evalBatches := r.trainLoader.Len(), r.valLoader.Len()+r.trainEvalLoader.Len()
	var stepSecs, epochSecs, onceSecs float64
	var once string
	switch {
	case ps.Cache != "none":
		featSecs, feats, err := timed(noGrad(r.m.FrozenFeatures, x))
		if err != nil {
			return err
		}
		cached := evalBatches
		if ps.Cache == "training and validation" {
			if stepSecs, _, err = timed(step(func(f *torch.Tensor) (*torch.Tensor, error) { return f, nil }, feats)); err != nil {
				return err
			}
			cached += trainBatches
		} else if stepSecs, _, err = timed(step(r.m.FrozenFeatures, x)); err != nil {
			return err
		}
		onceSecs = float64(cached) * featSecs
		once = fmt.Sprintf("features of %s computed once", batches(cached))
	case ps.ActivationViews > 0:
		prefixSecs, h, err := timed(noGrad(r.m.PrefixActivations, x))
		if err != nil {
			return err
		}
		if stepSecs, _, err = timed(step(r.m.TrainFromPrefix, h)); err != nil {
			return err
		}
		// Validation and the train accuracy run from cached activations
		// too.
		evalSecs, _, err := timed(noGrad(r.m.TrainFromPrefix, h))
		if err != nil {
			return err
		}
		epochSecs = float64(evalBatches) * evalSecs
		onceSecs = float64(ps.ActivationViews*trainBatches+evalBatches) * prefixSecs
		once = fmt.Sprintf("activations of %s × %s and %s computed once", plural.Count(ps.ActivationViews, "view"),
			batches(trainBatches), batches(evalBatches)+" of evaluation")
	default:
		forward := r.m.TrainFeatures
		if r.m.BackboneFrozen() {
			forward = r.m.FrozenFeatures
		}
		if stepSecs, _, err = timed(step(forward, x)); err != nil {
			return err
		}
	}
	if ps.Cache == "none" && ps.ActivationViews == 0 {
		evalSecs, _, err := timed(noGrad(r.m.Forward, x))
		if err != nil {
			return err
		}
		epochSecs = float64(evalBatches) * evalSecs
	}
	ps.EstimatedSeconds = float64(ps.Epochs) * (float64(ps.StepsPerEpoch)*stepSecs + epochSecs)
	ps.EstimatedSeconds += onceSecs
	parts := []string{fmt.Sprintf("%s × (%s × %.3gs", plural.Count(ps.Epochs, "epoch"), plural.Count(ps.StepsPerEpoch, "step"), stepSecs)}
	if epochSecs > 0 {
		parts = append(parts, fmt.Sprintf(" + %.3gs of validation and train accuracy", epochSecs))
	}
	parts = append(parts, ")")
	if once != "" {
		parts = append(parts, fmt.Sprintf(" + %.3gs of %s", onceSecs, once))
	}
	reason := strings.Join(parts, "") + fmt.Sprintf("; timed on a batch of %d constant images, decoding not counted", b)
	value := time.Duration(ps.EstimatedSeconds * float64(time.Second)).Round(time.Second).String()
	r.decide(plan, fmt.Sprintf("stages[%d].estimate", i), value, reason,
		fmt.Sprintf("stage %s: about %s: %s", ps.Name, value, reason))
	return nil
}

// batches counts batches.
func batches(n int) string {
	if n == 1 {
		return "1 batch"
	}
	return fmt.Sprintf("%d batches", n)
}

// readOne reads one value of t, which waits for the computation of t.
func readOne(t *torch.Tensor) error {
	s, err := t.Sum()
	if err == nil {
		_, err = s.Item()
	}
	return err
}

// runEstimate is the estimated seconds of the stages of plan from index
// i on.
func runEstimate(plan *Plan, i int) float64 {
	var s float64
	for _, st := range plan.Stages[i:] {
		s += st.EstimatedSeconds
	}
	return s
}
