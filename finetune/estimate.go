package finetune

import (
	"fmt"
	"math"
	"slices"
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
	tb, err := r.timingBatch()
	if err != nil {
		return err
	}
	x, timed := tb.x, tb.timed
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
	ps.EpochSeconds, ps.OnceSeconds = float64(ps.StepsPerEpoch)*stepSecs+epochSecs, onceSecs
	ps.EstimatedSeconds = float64(ps.Epochs)*ps.EpochSeconds + ps.OnceSeconds
	parts := []string{fmt.Sprintf("%s × (%s × %.3gs", plural.Count(ps.Epochs, "epoch"), plural.Count(ps.StepsPerEpoch, "step"), stepSecs)}
	if epochSecs > 0 {
		parts = append(parts, fmt.Sprintf(" + %.3gs of validation and train accuracy", epochSecs))
	}
	parts = append(parts, ")")
	if once != "" {
		parts = append(parts, fmt.Sprintf(" + %.3gs of %s", onceSecs, once))
	}
	reason := strings.Join(parts, "") + fmt.Sprintf("; timed on a batch of %d constant images, decoding not counted", tb.n)
	value := time.Duration(ps.EstimatedSeconds * float64(time.Second)).Round(time.Second).String()
	r.decide(plan, fmt.Sprintf("stages[%d].estimate", i), value, reason,
		fmt.Sprintf("stage %s: about %s: %s", ps.Name, value, reason))
	return nil
}

// timingBatch is a batch of constant images, on the device in the run's
// layout, that estimates time computations on, scaled to
// data.batch_size.
type timingBatch struct {
	x     *torch.Tensor
	n     int
	scale float64
	at    placement
}

// timingBatch makes a timingBatch in the current scope.
func (r *run) timingBatch() (*timingBatch, error) {
	b := min(r.cfg.Data.BatchSize, estimateBatch)
	side := int64(r.cfg.Data.ImageSize)
	x, err := torch.Full([]int64{int64(b), 3, side, side}, 0.5)
	if err == nil {
		x, err = r.at.input(x)
	}
	if err != nil {
		return nil, err
	}
	return &timingBatch{x: x, n: b, scale: float64(r.cfg.Data.BatchSize) / float64(b), at: r.at}, nil
}

// timed runs f twice, the first a warm-up, under the run's autocast,
// and returns the seconds of the second scaled to a whole batch, and
// its output.
func (tb *timingBatch) timed(f func() (*torch.Tensor, error)) (float64, *torch.Tensor, error) {
	var out *torch.Tensor
	var secs float64
	for range 2 {
		start := time.Now()
		err := tb.at.compute(func() error {
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
		secs = time.Since(start).Seconds() * tb.scale
	}
	return secs, out, nil
}

// noGrad is f of in without autograd, as a computation to time.
func noGrad(f func(*torch.Tensor) (*torch.Tensor, error), in *torch.Tensor) func() (*torch.Tensor, error) {
	return func() (out *torch.Tensor, err error) {
		err = torch.NoGrad(func() error {
			out, err = f(in)
			return err
		})
		return out, err
	}
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

// autoMaxTimeFloor is the least budget train.max_time: auto gives a
// CPU run.
const autoMaxTimeFloor = 2 * time.Minute

// resolveMaxTime decides plan.MaxTime (train.max_time) and, under a
// budget, estimates the seconds of the passes after the last stage
// (validation, the train sample, the test set), which the stages must
// leave time for. The model is as resolveStages leaves it, unfused.
func (r *run) resolveMaxTime(plan *Plan) (final float64, err error) {
	cfg := r.cfg
	budget, _ := parseMaxTime(cfg.Train.MaxTime) // Validate checked it
	if budget == 0 || cfg.Recipe == "linear-probe" {
		return 0, nil
	}
	if budget < 0 && r.at.device.Type != torch.DeviceCPU {
		r.decide(plan, "train.max_time", "0", fmt.Sprintf("no budget on %v: the stages train their configured epochs", r.at.device), "")
		return 0, nil
	}
	wasTraining := r.m.Training()
	defer r.m.Train(wasTraining)
	r.m.Train(false)
	s := torch.NewScope()
	defer s.Close()
	tb, err := r.timingBatch()
	if err != nil {
		return 0, err
	}
	batchSize := cfg.Data.BatchSize
	if budget < 0 {
		// The loop one writes by hand: the whole model's float32 forward,
		// unfused, the backbone frozen (no autograd through it); the
		// head's step is a small part of it.
		plain := *tb
		plain.at.autocast = 0
		secs, _, err := plain.timed(noGrad(r.m.Forward, tb.x))
		if err != nil {
			return 0, err
		}
		n := (len(r.d.Train) + batchSize - 1) / batchSize
		epoch := float64(n) * secs
		budget = max(autoMaxTimeFloor, time.Duration(epoch*float64(time.Second)).Round(time.Second))
		r.decide(plan, "train.max_time", budget.String(), fmt.Sprintf("on the CPU, the larger of %v and one epoch of a plain loop "+
			"(the whole model's float32 forward, unfused, the backbone frozen): %s × %.3gs = %s; timed on a batch of %d constant images",
			autoMaxTimeFloor, batches(n), secs, seconds(epoch), tb.n), "")
	}
	plan.MaxTime = budget.Seconds()
	restore, err := r.m.useFusedForEval(torch.ChannelsLast, r.at.frozenType())
	if err != nil {
		return 0, err
	}
	defer restore()
	evalSecs, _, err := tb.timed(noGrad(func(x *torch.Tensor) (*torch.Tensor, error) {
		f, err := r.m.FrozenFeatures(x)
		if err != nil {
			return nil, err
		}
		return r.m.Head.Forward(f)
	}, tb.x))
	if err != nil {
		return 0, err
	}
	n := r.valLoader.Len() + r.trainEvalLoader.Len()
	if r.d.TestSet != nil {
		n += (len(r.d.TestSet.Samples) + batchSize - 1) / batchSize
	}
	return float64(n) * evalSecs, nil
}

// onceSeconds is what stage ps computes once, before its first epoch,
// when it trains epochs epochs, and the activation views it caches then:
// a view per pass over the images (of perPass batches) at most, as
// decideActivations chose them, each costing what ps's estimate says,
// with eval batches of evaluation images besides.
func onceSeconds(ps PlanStage, epochs, perPass, eval int, augmented bool) (float64, int) {
	if ps.ActivationViews == 0 || !augmented {
		return ps.OnceSeconds, ps.ActivationViews
	}
	views := min(ps.ActivationViews, (epochs*ps.StepsPerEpoch+perPass-1)/perPass)
	perBatch := ps.OnceSeconds / float64(ps.ActivationViews*perPass+eval)
	return perBatch * float64(views*perPass+eval), views
}

// fitStages keeps of plan's stages, in order, the epochs that fit in the
// budget (plan.MaxTime) left after the time spent so far and final, the
// passes after the last stage, caching as many activation views as the
// epochs kept pass over the images; a stage no epoch of which fits is
// dropped, unless it is the first and the head starts random: one epoch
// of it trains the head. res's features, the first stage's, are freed
// when it is dropped.
func (r *run) fitStages(plan *Plan, final float64, res *resolution) error {
	if plan.MaxTime == 0 || len(plan.Stages) == 0 {
		return nil
	}
	left := plan.MaxTime - r.since() - final
	vals := []*float64{&plan.MaxTime, &left}
	for i := range plan.Stages {
		vals = append(vals, &plan.Stages[i].EpochSeconds, &plan.Stages[i].OnceSeconds)
	}
	// Every rank trains the epochs rank 0 fits, and stops where it does:
	// auto's budget is timed on each.
	if err := r.dp.agree(vals...); err != nil {
		return err
	}
	need := plan.MaxTime - left
	for _, ps := range plan.Stages {
		need += ps.EstimatedSeconds
	}
	more := fmt.Sprintf("--train.max_time %dm gives the whole recipe its estimated time", int(math.Ceil(need/60)))
	budget := seconds(plan.MaxTime)
	var perPass, eval int
	if slices.ContainsFunc(plan.Stages, func(ps PlanStage) bool { return ps.ActivationViews > 0 }) {
		perPass, eval = r.trainLoader.Len(), r.valLoader.Len()+r.trainEvalLoader.Len()
	}
	var kept []PlanStage
	for i, ps := range plan.Stages {
		onceFor := func(k int) (float64, int) {
			if i == 0 {
				// Computed while the plan was made: already spent.
				return 0, ps.ActivationViews
			}
			return onceSeconds(ps, k, perPass, eval, r.cfg.Augment.Enabled)
		}
		fit := 0
		for k := ps.Epochs; k > 0; k-- {
			if o, _ := onceFor(k); o+float64(k)*ps.EpochSeconds <= left {
				fit = k
				break
			}
		}
		once, views := onceFor(max(fit, 1))
		key := fmt.Sprintf("stages[%d].epochs", i)
		epoch := fmt.Sprintf("an epoch takes about %s", seconds(ps.EpochSeconds))
		if once > 0 {
			epoch += fmt.Sprintf(", after %s computed once", seconds(once))
		}
		if views < ps.ActivationViews {
			epoch += fmt.Sprintf(" (%s of activations)", plural.Count(views, "view"))
		}
		decide := func(key, value, what, reason string) {
			r.decide(plan, key, value, reason, fmt.Sprintf("stage %s: %s: %s", ps.Name, what, reason))
		}
		switch {
		case fit == 0 && i == 0 && plan.HeadStart != "probe":
			fit = 1
			decide(key, "1", "1 epoch", fmt.Sprintf("%s left of train.max_time %s, %s: over the budget, but the head starts random "+
				"and one epoch trains it; %s", seconds(max(0, left)), budget, epoch, more))
		case fit == 0:
			decide(fmt.Sprintf("stages[%d]", i), "dropped", "dropped", fmt.Sprintf("%s left of train.max_time %s, %s; %s",
				seconds(max(0, left)), budget, epoch, more))
			if i == 0 && res.feats != nil {
				res.feats.free(r.m)
				res.feats = nil
			}
			continue
		case fit < ps.Epochs:
			decide(key, fmt.Sprint(fit), plural.Count(fit, "epoch"), fmt.Sprintf("of %d: %s left of train.max_time %s, %s; %s",
				ps.Epochs, seconds(left), budget, epoch, more))
		}
		ps.Epochs = fit
		if i > 0 {
			ps.OnceSeconds, ps.ActivationViews = once, views
		}
		ps.EstimatedSeconds = float64(fit)*ps.EpochSeconds + ps.OnceSeconds
		left -= float64(fit)*ps.EpochSeconds + once
		kept = append(kept, ps)
	}
	plan.Stages = kept
	if len(kept) == 0 {
		why := fmt.Sprintf("no stage fits in train.max_time %s: the probe is the model", budget)
		r.decide(plan, "stages", "none", why, why)
	}
	return nil
}
