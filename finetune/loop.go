package finetune

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
	Stage       int             `json:"stage"`
	Epoch       int             `json:"epoch"`         // epochs finished in the stage
	StepInEpoch int             `json:"step_in_epoch"` // steps finished in the epoch in progress
	Step        int             `json:"step"`          // steps finished in the stage
	BestValue   float64         `json:"best_value"`
	HaveBest    bool            `json:"have_best"`
	SinceBest   int             `json:"since_best"`
	StageBest   float64         `json:"stage_best"`
	StageHave   bool            `json:"stage_have"`
	Best        EpochMetrics    `json:"best_epoch"`
	History     []EpochMetrics  `json:"history"`
	Trained     map[string]bool `json:"trained"`
	Partial     partialEpoch    `json:"partial"`
	// BeatProbe says an epoch of the stage in progress beat the probe's
	// validation accuracy (TrainConfig.ProbePatience).
	BeatProbe bool `json:"beat_probe"`
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
		if err := lp.runStage(ctx, p); err != nil {
			// Cancellation may surface anywhere (a loader, a validation
			// pass); the state still describes the last finished step.
			if ctx.Err() != nil && !errors.Is(err, ErrInterrupted) && !errors.Is(err, errRecord) {
				return lp.interrupt(p, ctx.Err())
			}
			return err
		}
		lp.state.Stage++
		lp.state.Epoch, lp.state.Step, lp.state.StepInEpoch = 0, 0, 0
		lp.state.StageHave, lp.state.SinceBest, lp.state.BeatProbe = false, 0, false
	}
	return lp.fallBackToProbe()
}

// fallBackToProbe ends the run with the probe's model when the probe
// did better on validation than the best epoch (probe_fallback).
// Accuracy decides, not the early-stopping metric: the probe's L2
// penalty, chosen for accuracy, leaves its probabilities less confident
// than a trained head's, so its loss says little about how often it is
// right.
func (lp *loop) fallBackToProbe() error {
	probe := lp.plan.ProbeAccuracy
	if lp.probeStart == nil || probe == nil || !lp.state.HaveBest || *probe <= lp.state.Best.ValAccuracy {
		return nil
	}
	if _, err := nn.LoadStateDict(lp.m, lp.probeStart, nn.LoadOptions{}); err != nil {
		return fmt.Errorf("probe_fallback: %w", err)
	}
	lp.state.FellBack = true
	lp.info("probe_fallback: the linear probe's validation accuracy %.4f beats the best epoch's %.4f: the run ends with the probe's model",
		*probe, lp.state.Best.ValAccuracy)
	return nil
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
			lp.state.Stops = append(lp.state.Stops, *stop)
			lp.ev.emit(Event{Kind: EventStageStop, Stage: p.Name, Epoch: em.Epoch, Message: stop.Message, Stop: stop})
			break
		}
	}
	return lp.restoreBest()
}

// stageStop says whether stage p stops after epoch em, and why: early
// stopping's patience ran out, or, in a stage after the first of a run
// that can end with the probe's model, its first
// train.probe_patience epochs did not beat the probe on validation.
func (lp *loop) stageStop(p stagePlan, em *EpochMetrics) *StageStop {
	probe := lp.plan.ProbeAccuracy
	if probe != nil && em.ValAccuracy > *probe {
		lp.state.BeatProbe = true
	}
	if pat := lp.cfg.Train.ProbePatience; pat > 0 && p.index > 0 && probe != nil && lp.probeStart != nil &&
		!lp.state.BeatProbe && lp.state.Epoch >= pat && lp.state.Epoch < p.Epochs {
		return &StageStop{Stage: p.Name, Epoch: em.Epoch, Reason: "probe", Message: fmt.Sprintf(
			"stage %s: stopped after epoch %d: none of its %s reached a validation accuracy above the linear probe's %.4f "+
				"(train.probe_patience: %d), and the run ends with the probe's model unless an epoch beats it",
			p.Name, em.Epoch, plural.Count(lp.state.Epoch, "epoch"), *probe, pat)}
	}
	if pat := lp.cfg.Train.EarlyStopping.Patience; pat > 0 && lp.state.SinceBest >= pat && lp.state.Epoch < p.Epochs {
		return &StageStop{Stage: p.Name, Epoch: em.Epoch, Reason: "early_stopping", Message: fmt.Sprintf(
			"stage %s: early stop after epoch %d: %s has not improved for %s",
			p.Name, em.Epoch, lp.cfg.Train.EarlyStopping.Metric, plural.Count(lp.state.SinceBest, "epoch"))}
	}
	return nil
}

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
// are the best of the whole run, so a later stage that does worse ends
// with the earlier best.
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
		lp.state.BestValue, lp.state.HaveBest = v, true
		em.Best = true
		lp.state.Best = *em
		if err := lp.keepBest(); err != nil {
			return nil, err
		}
	}
	stop := lp.stageStop(p, em)
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
