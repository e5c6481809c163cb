package main

import (
	"errors"
	"fmt"
	"github.com/finetune-go/finetune/internal/printable"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/finetune-go/finetune/torch/nn"
)

// runSummary is the final object of run --json.
type runSummary struct {
	Event       string                    `json:"event"` // "summary"
	RunDir      string                    `json:"run_dir"`
	Seconds     float64                   `json:"seconds"`
	Best        *finetune.EpochMetrics    `json:"best,omitempty"`
	Val         *evalSummary              `json:"val,omitempty"`
	Test        *evalSummary              `json:"test,omitempty"`
	Checkpoints []finetune.CheckpointFile `json:"checkpoints,omitempty"`
	Files       []runfolder.File          `json:"files,omitempty"`
	Folds       []finetune.FoldResult     `json:"folds,omitempty"`
	CVMean      float64                   `json:"cv_val_accuracy_mean,omitempty"`
	CVStd       float64                   `json:"cv_val_accuracy_std,omitempty"`
	Overfitting bool                      `json:"overfitting"`
	Advice      []string                  `json:"advice,omitempty"`
	Skipped     []string                  `json:"skipped_images,omitempty"`
}

type evalSummary struct {
	Loss     float64 `json:"loss"`
	Accuracy float64 `json:"accuracy"`
	MacroF1  float64 `json:"macro_f1"`
	Images   int64   `json:"images"`
}

func summarizeEval(e *finetune.Evaluation) *evalSummary {
	if e == nil {
		return nil
	}
	return &evalSummary{Loss: e.Loss, Accuracy: e.Accuracy, MacroF1: e.Confusion.MacroF1(), Images: e.Confusion.Total()}
}

// failure reports a run that stopped with err (which main prints), and
// the files its folder kept (none for a run that failed before its first
// epoch).
func (d *display) failure(err error, files []runfolder.File) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clearBar()
	if d.mode == modeJSON {
		d.json(map[string]any{"event": "error", "message": err.Error(),
			"interrupted": errors.Is(err, finetune.ErrInterrupted), "files": files})
		return
	}
	if len(files) > 0 && d.mode != modeQuiet {
		fmt.Fprintf(d.out, "kept so far: %s\n", strings.Join(paths(files), ", "))
	}
}

func paths(files []runfolder.File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Path)
	}
	return out
}

// summary prints what a finished run produced, with the files its folder
// holds, and, when it overfits, the settings that usually help.
func (d *display) summary(cfg finetune.Config, res *finetune.Result, files []runfolder.File) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clearBar()
	advice := overfitAdvice(cfg, res)
	var skipped []string
	for _, s := range res.Skipped {
		skipped = append(skipped, fmt.Sprintf("%s: %v", s.Path, s.Err))
	}
	if d.mode == modeJSON {
		s := runSummary{Event: "summary", RunDir: cfg.Output.Dir, Seconds: res.Seconds, Val: summarizeEval(res.Val),
			Test: summarizeEval(res.Test), Checkpoints: res.Checkpoints, Files: files, Folds: res.Folds,
			Overfitting: advice != nil, Advice: advice, Skipped: skipped}
		if len(res.History) > 0 && len(res.Folds) == 0 {
			s.Best = &res.Best
		}
		if len(res.Folds) > 0 {
			s.CVMean, s.CVStd = res.CVSummary()
		}
		d.json(s)
		return
	}
	w := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\nfinished in %s: %s\n", duration(res.Seconds), cfg.Output.Dir)
	if len(res.Folds) > 0 {
		d.cvSummary(w, res)
	} else {
		d.runSummary(w, cfg, res)
	}
	first := "  files"
	for _, f := range files {
		if !slices.ContainsFunc(res.Checkpoints, func(c finetune.CheckpointFile) bool { return c.Path == f.Path }) {
			fmt.Fprintf(w, "%s\t%s\t%s\n", first, f.Path, nn.Bytes(f.Bytes))
			first = ""
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(w, "  skipped images\t%d (data.on_bad_image: skip), listed in result.json\n", len(skipped))
		if d.mode == modeQuiet { // their warnings were held back
			for _, s := range skipped {
				fmt.Fprintf(w, "\t%s\n", printable.Text(s))
			}
		}
	}
	w.Flush()
	if len(res.Classes) <= 10 {
		// The test set first: it is the estimate of the model's
		// accuracy; validation chose the epoch.
		for _, e := range []struct {
			name string
			ev   *finetune.Evaluation
		}{{"test", res.Test}, {"validation", res.Val}} {
			if e.ev != nil {
				fmt.Fprintf(d.out, "\n%s per class:\n%s", e.name, e.ev.Confusion.Table())
			}
		}
	}
	if advice != nil {
		fmt.Fprintf(d.out, "\n%s\n", advice[0])
		for _, a := range advice[1:] {
			fmt.Fprintf(d.out, "  - %s\n", a)
		}
	}
}

func (d *display) runSummary(w *tabwriter.Writer, cfg finetune.Config, res *finetune.Result) {
	b := res.Best
	fmt.Fprintf(w, "  best epoch\t%s %d/%d (epoch %d of %d)\n", b.Stage, b.Epoch, d.epochs[b.Stage], b.GlobalEpoch, len(res.History))
	if t := res.Test; t != nil {
		fmt.Fprintf(w, "  test accuracy\t%.4f  loss %.4f  macro F1 %.4f  (%d images)\n", t.Accuracy, t.Loss, t.Confusion.MacroF1(), t.Confusion.Total())
	}
	if v := res.Val; v != nil {
		fmt.Fprintf(w, "  val accuracy\t%.4f  loss %.4f  macro F1 %.4f  (%d images)\n", v.Accuracy, v.Loss, v.Confusion.MacroF1(), v.Confusion.Total())
	}
	if p := res.ProbeAccuracy; p != nil {
		verdict := "the baseline (logistic regression on the frozen features)"
		if res.Val != nil && *p > res.Val.Accuracy && cfg.Recipe != "linear-probe" {
			verdict = "above the trained model's: the frozen features alone did better here (recipe: linear-probe keeps that model)"
		}
		if res.EndedWithProbe {
			verdict = fmt.Sprintf("no epoch beat the probe's model on %s: the model is the probe's (probe_fallback)", cfg.Train.EarlyStopping.Metric)
		}
		fmt.Fprintf(w, "  linear probe\tval accuracy %.4f: %s\n", *p, verdict)
	}
	if res.BatchNorm != "" {
		fmt.Fprintf(w, "  batchnorm\t%s\n", res.BatchNorm)
	}
	for _, st := range res.Stops {
		fmt.Fprintf(w, "  stopped\t%s\n", printable.Text(st.Message))
	}
	if te := res.TrainEval; te != nil && res.Val != nil {
		fmt.Fprintf(w, "  train accuracy\t%.4f in evaluation mode on %d training images: gap %+.4f over validation\n",
			te.Accuracy, te.Confusion.Total(), te.Accuracy-res.Val.Accuracy)
	} else {
		fmt.Fprintf(w, "  train accuracy\t%.4f at the best epoch, in evaluation mode: gap %+.4f over validation\n", b.TrainAccuracy, b.Gap)
	}
	fmt.Fprintf(w, "  head\t%s parameters (%s pooling, hidden %v)\n", nn.Thousands(res.HeadParams), cfg.Model.Head.Pooling, cfg.Model.Head.Hidden)
	if res.Cached != "" && res.Cached != "none" {
		fmt.Fprintf(w, "  features\t%s computed once while the backbone was frozen\n", res.Cached)
	}
	first := "  checkpoints"
	for _, c := range res.Checkpoints {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", first, c.Path, c.Form, nn.Bytes(c.Bytes))
		first = ""
	}
}

func (d *display) cvSummary(w *tabwriter.Writer, res *finetune.Result) {
	mean, std := res.CVSummary()
	fmt.Fprintf(w, "  cross-validation\tval accuracy %.4f ± %.4f over %d folds\n", mean, std, len(res.Folds))
	for _, f := range res.Folds {
		fmt.Fprintf(w, "  fold %d\tval accuracy %.4f  loss %.4f  best epoch %d  gap %+.4f\n", f.Fold, f.ValAccuracy, f.ValLoss, f.BestEpoch, f.Gap)
	}
}
