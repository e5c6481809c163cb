package main

import (
	"fmt"
	"slices"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/torch/nn"
)

// Overfitting thresholds: a gap between training and validation
// accuracy above maxGap at the best epoch, or at the last one once
// training accuracy passes memorised.
const (
	maxGap    = 0.05
	memorised = 0.98
)

// overfitAdvice returns nil when res does not overfit; otherwise a
// headline and then the settings that usually close the gap, each with
// the value this run used.
func overfitAdvice(cfg finetune.Config, res *finetune.Result) []string {
	if len(res.History) == 0 || len(res.Folds) > 0 {
		return nil
	}
	b, last := res.Best, res.History[len(res.History)-1]
	var head string
	switch {
	case b.Gap > maxGap:
		head = fmt.Sprintf("overfitting: train accuracy %.3f vs validation %.3f at the best epoch (gap %+.3f).",
			b.TrainAccuracy, b.ValAccuracy, b.Gap)
	case last.TrainAccuracy > memorised && last.Gap > maxGap:
		head = fmt.Sprintf("overfitting: train accuracy %.3f vs validation %.3f at the last epoch (gap %+.3f).",
			last.TrainAccuracy, last.ValAccuracy, last.Gap)
	default:
		return nil
	}
	out := []string{head + " Settings that usually close the gap, with this run's values:"}
	h := cfg.Model.Head
	params := nn.Thousands(res.HeadParams)
	if h.Pooling == "flatten" {
		out = append(out, fmt.Sprintf("model.head.pooling is flatten (a head of %s parameters): try avg", params))
	}
	if len(h.Hidden) > 0 {
		try := "[]"
		if h.Hidden[0] > 256 {
			try = "[] or [256]"
		}
		out = append(out, fmt.Sprintf("model.head.hidden is %v (a head of %s parameters): try %s", h.Hidden, params, try))
	}
	if h.Dropout < 0.5 {
		out = append(out, fmt.Sprintf("model.head.dropout is %g: try 0.5", h.Dropout))
	}
	a := cfg.Augment
	switch {
	case !a.Enabled:
		out = append(out, "augment.enabled is false: turn augmentation on")
	case a.Mixup == 0 && a.Cutmix == 0:
		out = append(out, "augment.mixup is 0: try 0.2 (or augment.cutmix 1)")
	}
	if n := len(res.History); b.GlobalEpoch < n*2/3 {
		out = append(out, fmt.Sprintf("the best epoch was %d of %d: fewer epochs, or train.early_stopping.patience %d (now %d)",
			b.GlobalEpoch, n, max(2, min(cfg.Train.EarlyStopping.Patience, 3)), cfg.Train.EarlyStopping.Patience))
	}
	t := cfg.Train
	if t.BatchNorm == "train" || t.BatchNorm == "legacy" {
		out = append(out, fmt.Sprintf("train.batchnorm is %s: try frozen (small batches give noisy statistics)", t.BatchNorm))
	}
	if t.WeightDecay < 0.05 {
		out = append(out, fmt.Sprintf("train.weight_decay is %g: try 0.05", t.WeightDecay))
	}
	if t.LabelSmoothing == 0 {
		out = append(out, "train.label_smoothing is 0: try 0.1")
	}
	for i, s := range cfg.Stages {
		// A ResNet's points only: the other families name their own.
		if at := slices.Index(finetune.FreezePoints, s.Freeze); at >= 0 && at < slices.Index(finetune.FreezePoints, "layer3") {
			out = append(out, fmt.Sprintf("stages[%d] (%s) freezes up to %s: on a small dataset freeze more (layer3 or all)", i, s.Name, s.Freeze))
		}
	}
	return out
}
