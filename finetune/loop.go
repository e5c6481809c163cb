package finetune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/finetune-go/finetune/internal/plural"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/torch/optim"
)

// loop trains a Plan: stage after stage, epoch after epoch, step after
// step. It reads the plan, never the Config's automatic settings, and
// reports every epoch and checkpoint to the run's Recorder.
type loop struct {
	*run
	plan  *Plan
	state trainState
	// opt is the stage's optimizer, built once when the stage starts.
	opt optim.Optimizer
	// baseLR is each optimizer group's learning rate before the schedule.
	baseLR []float64
	best   []nn.Named[*torch.Tensor]
	// probeStart is the whole model as the probe made it, before any
	// training: what probe_fallback ends with. Whole, because later
	// stages train layers the first one kept frozen.
	probeStart []nn.Named[*torch.Tensor]
	// first is the first stage's features, prepared while resolving the
	// plan; the first stage takes them over.
	first  *stageFeatures
	cached string
	// pendingOptState is a resumed optimizer state, loaded once the
	// stage's optimizer exists.
	pendingOptState *optim.State
	// lastPath is where the Recorder wrote the last resume checkpoint, ""
	// while none did.
	lastPath string
	// before is the wall time, in seconds, that the processes before
	// this one spent on the run: a resumed run's budget counts it.
	before float64
	// probeEvals and bestEvals are the validation and train-sample
	// evaluations of the probe's model and of the best epoch's weights,
	// when made as the end of the run would make them (see knownEvals);
	// nil otherwise.
	probeEvals, bestEvals *evaluations
}

// evaluations are the validation and train-sample evaluations of the
// model in one state.
type evaluations struct{ val, train *Evaluation }

// trainState is what a resumed run needs besides the plan, the weights
// and the optimizer.
type trainState struct {
	Stage       int `json:"stage"`
	Epoch       int `json:"epoch"`         // epochs finished in the stage
	StepInEpoch int `json:"step_in_epoch"` // steps finished in the epoch in progress
	Step        int `json:"step"`          // steps finished in the stage
	// BestValue is the early-stopping metric of the run's best so far,
	// whose weights the loop keeps: an epoch, or the probe's model
	// (Probe).
	BestValue float64 `json:"best_value"`
	HaveBest  bool    `json:"have_best"`
	SinceBest int     `json:"since_best"`
	StageBest float64 `json:"stage_best"`
	StageHave bool    `json:"stage_have"`
	// Best is the best epoch by the early-stopping metric, whether or
	// not it beat the probe's model.
	Best    EpochMetrics    `json:"best_epoch"`
	History []EpochMetrics  `json:"history"`
	Trained map[string]bool `json:"trained"`
	Partial partialEpoch    `json:"partial"`
	// Probe is the probe's model validated as an epoch is, before the
	// first step: epoch 0, the first candidate for the best
	// (probe_fallback); nil without one.
	Probe *EpochMetrics `json:"probe,omitempty"`
	// BeatBest says an epoch of the stage in progress beat the run's best
	// before it (TrainConfig.ProbePatience).
	BeatBest bool `json:"beat_best"`
	// Elapsed is the run's wall time in seconds when the state was
	// written: a resumed run's budget (Plan.MaxTime) counts it.
	Elapsed float64 `json:"elapsed"`
	// Stops lists the stages that stopped early.
	Stops []StageStop `json:"stops"`
	// FellBack says the run ended with the probe's model
	// (probe_fallback).
	FellBack bool `json:"fell_back"`
}

// partialEpoch accumulates the training metrics of the epoch in
// progress, so an epoch interrupted and resumed reports as one.
type partialEpoch struct {
	LossSum float64 `json:"loss_sum"`
	Correct int64   `json:"correct"`
	Seen    int64   `json:"seen"`
	Seconds float64 `json:"seconds"`
}

// stagePlan is a stage of the plan with its position.
type stagePlan struct {
	PlanStage
	index int
}

func (lp *loop) close() {
	for _, b := range lp.best {
		b.Value.Free()
	}
	for _, b := range lp.probeStart {
		b.Value.Free()
	}
	if lp.first != nil {
		lp.first.free(lp.m)
	}
	if lp.pendingOptState != nil {
		lp.pendingOptState.Free()
	}
}

// train runs the plan's stages from where the state is.
func (lp *loop) train(ctx context.Context) error {
	for lp.state.Stage < len(lp.plan.Stages) {
		p := stagePlan{PlanStage: lp.plan.Stages[lp.state.Stage], index: lp.state.Stage}
		skip, err := lp.skipStage(p)
		if err != nil {
			return err
		}
		if skip == nil {
			err = lp.runStage(ctx, p)
		} else {
			lp.stop(p, skip)
		}
		if err != nil {
			// Cancellation may surface anywhere (a loader, a validation
			// pass); the state still describes the last finished step.
			if ctx.Err() != nil && !errors.Is(err, ErrInterrupted) && !errors.Is(err, errRecord) {
				return lp.interrupt(p, ctx.Err())
			}
			return err
		}
		lp.state.Stage++
		lp.state.Epoch, lp.state.Step, lp.state.StepInEpoch = 0, 0, 0
		lp.state.StageHave, lp.state.SinceBest, lp.state.BeatBest = false, 0, false
	}
	return lp.fallBackToProbe()
}

// now is the loop's clock: the tests move it.
var now = time.Now

// elapsed is the run's wall time so far in seconds, resumed runs' time
// included, as rank 0 measured it: every rank stops where it does.
func (lp *loop) elapsed() (float64, error) {
	secs := lp.before + lp.since()
	err := lp.dp.agree(&secs)
	return secs, err
}

// outOfTime says whether the next epoch of stage p, and next seconds
// before it, would end past the plan's budget, and the time spent.
func (lp *loop) outOfTime(p stagePlan, next float64) (over bool, spent float64, err error) {
	if lp.plan.MaxTime == 0 {
		return false, 0, nil
	}
	if spent, err = lp.elapsed(); err != nil {
		return false, 0, err
	}
	return spent+next+p.EpochSeconds > lp.plan.MaxTime, spent, nil
}

// skipStage says whether stage p, about to start, is skipped because
// its first epoch would end past the plan's budget: a run has
// something to end with by then (the probe's model or an epoch), so
// the stage's time is not spent.
func (lp *loop) skipStage(p stagePlan) (*StageStop, error) {
	if !lp.state.HaveBest || lp.state.Epoch > 0 || lp.state.StepInEpoch > 0 {
		return nil, nil
	}
	over, spent, err := lp.outOfTime(p, p.OnceSeconds)
	if err != nil || !over {
		return nil, err
	}
	return &StageStop{Stage: p.Name, Reason: "max_time", Message: fmt.Sprintf(
		"stage %s: skipped: %s of train.max_time %s spent, and its first epoch takes about %s", p.Name,
		seconds(spent), seconds(lp.plan.MaxTime), seconds(p.OnceSeconds+p.EpochSeconds))}, nil
}

// seconds writes a duration in seconds as time.Duration does, to the
// second.
func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// stop records that stage p stopped early.
func (lp *loop) stop(p stagePlan, stop *StageStop) {
	lp.state.Stops = append(lp.state.Stops, *stop)
	lp.ev.emit(Event{Kind: EventStageStop, Stage: p.Name, Epoch: stop.Epoch, Message: stop.Message, Stop: stop})
}

// fallBackToProbe ends the run with the probe's model when no epoch beat
// it (probe_fallback). The probe's model is epoch 0 (probeEpoch): it
// competes for the best by the metric that picks the best epoch,
// measured by the same evaluation. With a metric of its own (the
// probe's accuracy from its logistic regression against the epochs'
// loss) a run could keep an epoch by one measure and then drop it for
// the probe by another: the demo kept a head epoch by validation loss,
// never a fine-tuning epoch more accurate than the probe, and then
// ended with the probe, more accurate than the head epoch.
func (lp *loop) fallBackToProbe() error {
	pr := lp.state.Probe
	if pr == nil || slices.ContainsFunc(lp.state.History, func(e EpochMetrics) bool { return e.Best }) {
		return nil
	}
	if _, err := nn.LoadStateDict(lp.m, lp.probeStart, nn.LoadOptions{}); err != nil {
		return fmt.Errorf("probe_fallback: %w", err)
	}
	lp.state.FellBack = true
	metric := lp.cfg.Train.EarlyStopping.Metric
	v, _ := lp.metricValue(*pr)
	msg := fmt.Sprintf("probe_fallback: no epoch beat the probe's model (epoch 0) on %s (%.4f)", metric, v)
	if len(lp.state.History) > 0 {
		b, _ := lp.metricValue(lp.state.Best)
		msg += fmt.Sprintf("; the best epoch's: %.4f", b)
	}
	lp.info("%s: the run ends with the probe's model", msg)
	return nil
}

// probeEpoch validates the probe's model as epoch 0 before the first
// step of a run that can end with it (probe_fallback): the first
// candidate for the best. feats are the first stage's, whose cached
// validation features make it one pass of the head.
func (lp *loop) probeEpoch(ctx context.Context, p stagePlan, feats *stageFeatures) error {
	if lp.probeStart == nil || lp.state.Probe != nil || lp.state.Stage > 0 || lp.state.Step > 0 {
		return nil
	}
	// Resolving the plan evaluated the probe's model already, on the
	// same cached features, unless this run resumed.
	var val *Evaluation
	if lp.probeEvals != nil {
		val = lp.probeEvals.val
	} else {
		var err error
		if val, err = lp.evaluate(ctx, lp.valLoader, feats.val, nil); err != nil {
			return fmt.Errorf("validating the probe's model: %w", err)
		}
	}
	if err := lp.dp.agree(&val.Loss, &val.Accuracy); err != nil {
		return err
	}
	em := EpochMetrics{Fold: lp.ev.fold, Stage: p.Name, ValLoss: val.Loss, ValAccuracy: val.Accuracy}
	lp.state.Probe = &em
	lp.state.BestValue, _ = lp.metricValue(em)
	lp.state.HaveBest = true
	lp.info("the probe's model, epoch 0: val_loss %.4f, val_accuracy %.4f: the best so far, which an epoch must beat on %s",
		em.ValLoss, em.ValAccuracy, lp.cfg.Train.EarlyStopping.Metric)
	return lp.keepBest()
}

// prepareStage freezes the backbone as stage p says and builds the
// stage's optimizer, once.
func (lp *loop) prepareStage(p stagePlan) error {
	cfg := lp.cfg
	if err := lp.m.Freeze(p.Freeze, cfg.Train.BNAffine); err != nil {
		return fmt.Errorf("stages[%d].freeze: %w", p.index, err)
	}
	for _, e := range nn.Trainable(lp.m) {
		lp.state.Trained[e.Name] = true
	}
	tc := cfg.Train
	tc.LR, tc.WeightDecay = p.LR, p.WeightDecay
	var err error
	if lp.opt, lp.baseLR, err = newOptimizer(tc, lp.m, p.BackboneLRMult); err != nil {
		return fmt.Errorf("stages[%d]: %w", p.index, err)
	}
	if lp.pendingOptState != nil {
		if err := lp.opt.LoadState(lp.pendingOptState); err != nil {
			return fmt.Errorf("resume: optimizer: %w", err)
		}
		lp.pendingOptState.Free()
		lp.pendingOptState = nil
	}
	total, trainable := nn.CountParameters(lp.m)
	lp.ev.emit(Event{Kind: EventStage, Stage: p.Name, Epochs: p.Epochs, Estimate: p.EstimatedSeconds,
		RunEstimate: runEstimate(lp.plan, p.index), Message: fmt.Sprintf(
			"stage %s: %s at most, frozen up to %s, %s of %s parameters trainable, BatchNorm %s, %d steps per epoch",
			p.Name, plural.Count(p.Epochs, "epoch"), p.Freeze, nn.Thousands(trainable), nn.Thousands(total), lp.plan.BatchNorm, p.StepsPerEpoch)})
	return nil
}

// runStage trains one stage of the plan until its epochs are done or
// early stopping ends it.
func (lp *loop) runStage(ctx context.Context, p stagePlan) error {
	if err := lp.prepareStage(p); err != nil {
		return err
	}
	// Resolving the plan prepared the first stage's features of a new
	// run; any other stage, and a resumed one, prepares its own.
	feats := lp.first
	lp.first = nil
	if feats == nil {
		var err error
		lp.cached = p.Cache
		if feats, err = lp.stageFeatures(ctx, p); err != nil {
			return err
		}
	}
	defer feats.free(lp.m)
	if err := lp.probeEpoch(ctx, p, feats); err != nil {
		return err
	}
	total := p.Epochs * p.StepsPerEpoch
	for lp.state.Epoch < p.Epochs {
		if err := lp.dp.interrupted(ctx); err != nil {
			return lp.interrupt(p, err)
		}
		em, err := lp.trainEpoch(ctx, p, feats, total)
		if err != nil {
			return err
		}
		if err := lp.dp.syncBuffers(lp.m); err != nil {
			return err
		}
		val, err := lp.evaluate(ctx, lp.valLoader, feats.val, nil)
		if err != nil {
			return fmt.Errorf("validation: %w", err)
		}
		train, err := lp.evaluate(ctx, lp.trainEvalLoader, feats.trainEval, lp.d.TrainSet)
		if err != nil {
			return fmt.Errorf("train accuracy: %w", err)
		}
		if err := lp.dp.agree(&val.Loss, &val.Accuracy, &train.Loss, &train.Accuracy); err != nil {
			return err
		}
		em.ValLoss, em.ValAccuracy = val.Loss, val.Accuracy
		em.TrainEvalLoss, em.TrainAccuracy = train.Loss, train.Accuracy
		em.Gap = em.TrainAccuracy - em.ValAccuracy
		lp.state.Epoch++
		lp.state.StepInEpoch = 0
		lp.state.Partial = partialEpoch{}
		stop, err := lp.endEpoch(p, &em)
		if err != nil {
			return err
		}
		if em.Best {
			// From cached activations the layers after the prefix ran
			// unfused in float32, where the end of the run evaluates the
			// whole backbone fused in the frozen type: only evaluations
			// it would repeat exactly are kept.
			lp.bestEvals = nil
			if feats.acts == nil {
				lp.bestEvals = &evaluations{val, train}
			}
		}
		if stop != nil {
			lp.stop(p, stop)
			break
		}
	}
	return lp.restoreBest()
}

// stageStop says whether stage p stops after epoch em, and why: early
// stopping's patience ran out; or, in a stage after the first of a run
// that can end with the probe's model, none of its first
// train.probe_patience epochs beat the run's best before it, the
// probe's model included; or its next epoch would end past the plan's
// budget.
func (lp *loop) stageStop(p stagePlan, em *EpochMetrics) (*StageStop, error) {
	last := lp.state.Epoch >= p.Epochs
	metric := lp.cfg.Train.EarlyStopping.Metric
	if pat := lp.cfg.Train.ProbePatience; pat > 0 && p.index > 0 && lp.state.Probe != nil &&
		!lp.state.BeatBest && lp.state.Epoch >= pat && !last {
		return &StageStop{Stage: p.Name, Epoch: em.Epoch, Reason: "probe", Message: fmt.Sprintf(
			"stage %s: stopped after epoch %d: none of its %s beat the best so far on %s (%.4f, %s; train.probe_patience: %d), "+
				"and the run ends with that model unless an epoch beats it",
			p.Name, em.Epoch, plural.Count(lp.state.Epoch, "epoch"), metric, lp.state.BestValue, lp.bestName(), pat)}, nil
	}
	if pat := lp.cfg.Train.EarlyStopping.Patience; pat > 0 && lp.state.SinceBest >= pat && !last {
		return &StageStop{Stage: p.Name, Epoch: em.Epoch, Reason: "early_stopping", Message: fmt.Sprintf(
			"stage %s: early stop after epoch %d: %s has not improved for %s",
			p.Name, em.Epoch, metric, plural.Count(lp.state.SinceBest, "epoch"))}, nil
	}
	if last {
		return nil, nil
	}
	over, spent, err := lp.outOfTime(p, 0)
	if err != nil || !over {
		return nil, err
	}
	return &StageStop{Stage: p.Name, Epoch: em.Epoch, Reason: "max_time", Message: fmt.Sprintf(
		"stage %s: stopped after epoch %d: %s of train.max_time %s spent, and another epoch takes about %s",
		p.Name, em.Epoch, seconds(spent), seconds(lp.plan.MaxTime), seconds(p.EpochSeconds))}, nil
}

// bestName names the run's best so far: an epoch, or the probe's model.
func (lp *loop) bestName() string {
	for _, e := range slices.Backward(lp.state.History) {
		if e.Best {
			return fmt.Sprintf("epoch %d of stage %s", e.Epoch, e.Stage)
		}
	}
	return "the probe's model"
}

// metricValue is em's early-stopping metric, and whether higher is
// better.
func (lp *loop) metricValue(em EpochMetrics) (v float64, higherIsBetter bool) {
	if lp.cfg.Train.EarlyStopping.Metric == "val_accuracy" {
		return em.ValAccuracy, true
	}
	return em.ValLoss, false
}

func (lp *loop) improves(v, best float64, higher bool) bool {
	d := lp.cfg.Train.EarlyStopping.MinDelta
	if higher {
		return v > best+d
	}
	return v < best-d
}

// endEpoch records the epoch, keeps the best weights so far and records
// the resume checkpoint; it reports whether the stage should stop early,
// and why (stageStop). Patience counts within the stage; the weights kept
// are the best of the whole run, the probe's model (epoch 0) included,
// so a later stage that does worse ends with the earlier best.
func (lp *loop) endEpoch(p stagePlan, em *EpochMetrics) (*StageStop, error) {
	v, higher := lp.metricValue(*em)
	if !lp.state.StageHave || lp.improves(v, lp.state.StageBest, higher) {
		lp.state.StageBest, lp.state.StageHave, lp.state.SinceBest = v, true, 0
	} else {
		lp.state.SinceBest++
	}
	em.Fold = lp.ev.fold
	em.GlobalEpoch = len(lp.state.History) + 1
	if !lp.state.HaveBest || lp.improves(v, lp.state.BestValue, higher) {
		lp.state.BestValue, lp.state.HaveBest, lp.state.BeatBest = v, true, true
		em.Best = true
		if err := lp.keepBest(); err != nil {
			return nil, err
		}
	}
	if b, _ := lp.metricValue(lp.state.Best); len(lp.state.History) == 0 || lp.improves(v, b, higher) {
		lp.state.Best = *em
	}
	stop, err := lp.stageStop(p, em)
	if err != nil {
		return nil, err
	}
	lp.state.History = append(lp.state.History, *em)
	if err := lp.ev.record(Event{Kind: EventEpoch, Stage: p.Name, Epoch: em.Epoch, Metrics: em}); err != nil {
		return nil, err
	}
	if err := lp.writeResume(); err != nil {
		return nil, err
	}
	return stop, nil
}

// keepBest copies the current weights as the run's best.
func (lp *loop) keepBest() error {
	if lp.best == nil {
		var err error
		lp.best, err = cloneState(lp.m)
		return err
	}
	return torch.NoGrad(func() error {
		for i, e := range nn.StateDict(lp.m) {
			if err := lp.best[i].Value.Copy_(e.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

// restoreBest loads the best weights into the model.
func (lp *loop) restoreBest() error {
	if lp.best == nil {
		return nil
	}
	_, err := nn.LoadStateDict(lp.m, lp.best, nn.LoadOptions{})
	return err
}

// interrupt records a resumable checkpoint for the step just finished.
func (lp *loop) interrupt(p stagePlan, cause error) error {
	if !lp.ev.primary {
		return &interruption{ErrInterrupted.Error(), cause}
	}
	if err := lp.writeResume(); err != nil {
		return fmt.Errorf("%w; and recording the checkpoint failed: %w", cause, err)
	}
	return &interruption{fmt.Sprintf("%v in stage %s, epoch %d after step %d; %s",
		ErrInterrupted, p.Name, lp.state.Epoch+1, lp.state.StepInEpoch, lp.resumeHint()), cause}
}

// interruption is the error of an interrupted run. It wraps
// ErrInterrupted and the context's error, which it does not print: "context
// canceled" after the resume command would only be in the way of copying it.
type interruption struct {
	msg   string
	cause error
}

func (e *interruption) Error() string   { return e.msg }
func (e *interruption) Unwrap() []error { return []error{ErrInterrupted, e.cause} }

// resumeHint says how to continue from the last resume checkpoint, as a
// command to copy.
func (lp *loop) resumeHint() string {
	if lp.lastPath == "" {
		return "no Recorder kept a checkpoint to resume from"
	}
	return "resume with: finetune run --resume " + shellQuote(lp.lastPath)
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_./:=+,@.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=+,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// knownEvals returns the evaluations already made of the model the run
// ends with, the same images through the same fused backbone and head as
// a fresh evaluation: the probe's model's (probe_fallback, or no epoch
// trained after the probe made the head), or the best epoch's; nil when
// they were not made this way, or before a resume.
func (lp *loop) knownEvals() *evaluations {
	if lp.state.FellBack || !lp.state.HaveBest {
		return lp.probeEvals
	}
	return lp.bestEvals
}

// finish evaluates the model the run ends with and records the final
// checkpoints; the Result's Model is the caller's.
func (lp *loop) finish(ctx context.Context) (*Result, error) {
	res := &Result{Classes: lp.d.Classes, History: lp.state.History, Best: lp.state.Best, Model: lp.m, Cached: lp.cached, Stops: lp.state.Stops,
		BatchNorm: lp.plan.BatchNorm, ProbeAccuracy: lp.plan.ProbeAccuracy, EndedWithProbe: lp.state.FellBack, Plan: lp.plan}
	res.HeadParams, _ = nn.CountParameters(lp.m.Head)
	var err error
	if known := lp.knownEvals(); known != nil {
		res.Val, res.TrainEval = known.val, known.train
	} else {
		if res.Val, err = lp.evaluate(ctx, lp.valLoader, nil, lp.d.ValSet); err != nil {
			return nil, fmt.Errorf("final validation: %w", err)
		}
		if res.TrainEval, err = lp.evaluate(ctx, lp.trainEvalLoader, nil, lp.d.TrainSet); err != nil {
			return nil, fmt.Errorf("final train accuracy: %w", err)
		}
	}
	if lp.d.TestSet != nil {
		test, err := lp.loader(lp.d.TestSet, nil, keepAllLoader)
		if err != nil {
			return nil, fmt.Errorf("data.test: %w", err)
		}
		res.Test, err = lp.evaluate(ctx, test, nil, lp.d.TestSet)
		test.Close()
		if err != nil {
			return nil, fmt.Errorf("test: %w", err)
		}
	}
	res.Skipped = lp.skipped()
	metrics := map[string]float64{"val_accuracy": res.Val.Accuracy, "val_loss": res.Val.Loss}
	if res.Test != nil {
		metrics["test_accuracy"], metrics["test_loss"] = res.Test.Accuracy, res.Test.Loss
	}
	if res.Meta, err = lp.meta("full", "", metrics); err != nil {
		return nil, err
	}
	if res.Checkpoints, err = lp.writeFinal(res); err != nil {
		return nil, err
	}
	if err := lp.reportTopLosses(ctx, res); err != nil {
		return nil, err
	}
	if lp.first != nil { // a run that trains no stage: the probe is the model
		lp.first.free(lp.m)
		lp.first = nil
	}
	lp.m = nil // the caller owns it now
	return res, nil
}
