package finetune

import (
	"context"
	"fmt"

	"github.com/finetune-go/finetune/internal/printable"
	"github.com/finetune-go/finetune/vision/data"
)

// FoldResult is one fold of a cross-validation.
type FoldResult struct {
	Fold        int     `json:"fold"`
	ValAccuracy float64 `json:"val_accuracy"`
	ValLoss     float64 `json:"val_loss"`
	BestEpoch   int     `json:"best_epoch"`
	Gap         float64 `json:"gap"`
}

// CrossValidate trains cfg.CV.Folds models on stratified folds of the
// training folder (plus the validation folder, if any, when it has the
// same classes) and reports each fold and the mean ± standard deviation.
// Each fold is a run of its own for the Recorder (its events carry the
// fold); the summary over the folds is the artifact cv.json.
func CrossValidate(ctx context.Context, cfg Config, opts Options) (_ *Result, err error) {
	defer printable.Escape(&err)
	base, err := OpenData(cfg)
	if err != nil {
		return nil, err
	}
	all := base.TrainSet
	if cfg.Data.Val != "" {
		merged := *all
		merged.Samples = append(append([]data.Sample(nil), all.Samples...), base.ValSet.Samples...)
		all = &merged
	}
	folds, err := data.StratifiedKFold(all.Labels(), cfg.CV.Folds, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("cv.folds: %w", err)
	}
	res := &Result{Classes: base.Classes}
	var accs []float64
	for i, f := range folds {
		d := *base
		d.TrainSet, d.ValSet, d.Train, d.Val = all, all, f.Train, f.Val
		ev := newEmitter(opts, i)
		if err := ev.record(Event{Kind: EventFold, Message: fmt.Sprintf("fold %d of %d: %d training, %d validation images",
			i+1, len(folds), len(f.Train), len(f.Val))}); err != nil {
			return nil, err
		}
		r, err := trainOn(ctx, cfg, opts, &d, i)
		if err != nil {
			return nil, fmt.Errorf("fold %d: %w", i+1, err)
		}
		r.Model.Close()
		res.Folds = append(res.Folds, FoldResult{Fold: i + 1, ValAccuracy: r.Val.Accuracy, ValLoss: r.Val.Loss,
			BestEpoch: r.Best.GlobalEpoch, Gap: r.Best.Gap})
		res.History = append(res.History, r.History...)
		res.Seconds += r.Seconds
		accs = append(accs, r.Val.Accuracy)
	}
	mean, std := meanStd(accs)
	ev := newEmitter(opts, -1)
	ev.emit(Event{Kind: EventInfo, Message: fmt.Sprintf("cross-validation: val accuracy %.4f ± %.4f over %d folds", mean, std, len(accs))})
	cv := Artifact{Name: "cv.json", Value: map[string]any{"folds": res.Folds, "val_accuracy_mean": mean, "val_accuracy_std": std}}
	if err := ev.record(Event{Kind: EventArtifact, Artifact: &cv}); err != nil {
		return nil, err
	}
	return res, nil
}

// CVSummary returns the mean and standard deviation of the folds' val
// accuracy.
func (r *Result) CVSummary() (mean, std float64) {
	accs := make([]float64, len(r.Folds))
	for i, f := range r.Folds {
		accs[i] = f.ValAccuracy
	}
	return meanStd(accs)
}

// Summary is the run's result.json: what a pipeline reading the run
// folder needs (classes, the best epoch, the evaluations with per-class
// metrics and confusion matrices, the checkpoints, skipped images), as a
// value for encoding/json.
func (r *Result) Summary() map[string]any {
	out := map[string]any{
		"classes": r.Classes, "best": r.Best, "head_params": r.HeadParams,
		"checkpoints": r.Checkpoints, "features": r.Cached, "batchnorm": r.BatchNorm,
	}
	if r.Stops != nil {
		out["stage_stops"] = r.Stops
	}
	if r.ProbeAccuracy != nil {
		out["linear_probe_val_accuracy"] = *r.ProbeAccuracy
		out["ended_with_probe"] = r.EndedWithProbe
	}
	for name, e := range map[string]*Evaluation{"val": r.Val, "test": r.Test, "train_eval": r.TrainEval} {
		if e == nil {
			continue
		}
		out[name] = map[string]any{"loss": e.Loss, "accuracy": e.Accuracy, "macro_f1": e.Confusion.MacroF1(),
			"per_class": perClassJSON(e.Confusion), "confusion": e.Confusion.Counts}
	}
	// The gap of the model the run ends with, both sides in evaluation
	// mode; "best" holds the best epoch's.
	if r.TrainEval != nil && r.Val != nil {
		out["gap"] = r.TrainEval.Accuracy - r.Val.Accuracy
	}
	var skipped []string
	for _, s := range r.Skipped {
		skipped = append(skipped, s.Path+": "+s.Err.Error())
	}
	if skipped != nil {
		out["skipped_images"] = skipped
	}
	return out
}

func perClassJSON(c *Confusion) []map[string]any {
	var out []map[string]any
	for _, m := range c.PerClass() {
		out = append(out, map[string]any{"class": m.Class, "precision": m.Precision, "recall": m.Recall,
			"f1": m.F1, "support": m.Support})
	}
	return out
}
