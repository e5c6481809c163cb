package shift

import (
	"fmt"
	"strings"
)

// Threshold is the shift (Report.Mean) from which re-estimating the
// BatchNorm statistics on the training images (batchnorm: adapt) trains a
// better head on a frozen backbone than keeping the stored ones. It was
// set by the experiment of bench/bnauto (see bench/bnauto/RESULTS.md):
// Fashion-MNIST class pairs as they are and dimmed, washed out, tinted and
// inverted, each trained both ways; the threshold is the cut on the
// measured shift that loses the least test accuracy over those tasks.
const Threshold = 0.1

// Mean returns the shift averaged over all BatchNorm layers: the statistic
// ChooseBN compares with Threshold.
func (r *Report) Mean() float64 {
	if len(r.Layers) == 0 {
		return 0
	}
	sum := 0.0
	for _, l := range r.Layers {
		sum += l.Divergence
	}
	return sum / float64(len(r.Layers))
}

// onset returns the first stage whose shift reaches Threshold, or the
// stage of the largest shift when none does.
func (r *Report) onset() string {
	best, top := "", -1.0
	for _, s := range r.Stages {
		if s.Layers == 0 {
			continue
		}
		if s.Divergence >= Threshold {
			return s.Name
		}
		if s.Divergence > top {
			best, top = s.Name, s.Divergence
		}
	}
	return best
}

// ChooseBN decides train.batchnorm: auto for a frozen backbone: "adapt"
// when the measured shift (Report.Mean) reaches Threshold, "frozen"
// otherwise, and says why.
func ChooseBN(r *Report) (mode, why string) {
	m := r.Mean()
	if m >= Threshold {
		return "adapt", fmt.Sprintf("BatchNorm shift %.3g ≥ %.3g, largest from %s on: the stored statistics do not fit these images", m, Threshold, r.onset())
	}
	return "frozen", fmt.Sprintf("BatchNorm shift %.3g < %.3g: the stored statistics fit these images", m, Threshold)
}

// Implication says in one line what the shift implies for fine-tuning.
func (r *Report) Implication() string {
	mode, _ := ChooseBN(r)
	if mode == "adapt" {
		return fmt.Sprintf("large shift (%.3g ≥ %.3g) from %s on: the source's BatchNorm statistics do not fit these images; batchnorm: adapt",
			r.Mean(), Threshold, r.onset())
	}
	return fmt.Sprintf("small shift (%.3g < %.3g): the stored BatchNorm statistics fit these images; batchnorm: frozen", r.Mean(), Threshold)
}

// Table formats the shift per stage and overall, one line each.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %6s  %s\n", "stage", "layers", "shift (symmetric KL)")
	for _, s := range r.Stages {
		fmt.Fprintf(&b, "%-8s %6d  %.4f\n", s.Name, s.Layers, s.Divergence)
	}
	fmt.Fprintf(&b, "%-8s %6d  %.4f  (threshold %.3g, %d images)\n", "all", len(r.Layers), r.Mean(), Threshold, r.Images)
	return b.String()
}

// Dataset sizes of SuggestFreeze's rule, in training images.
const (
	SmallData = 1000
	LargeData = 10000
)

// SuggestFreeze suggests the freeze point (finetune's FreezePoints) of the
// fine-tuning stage from the shift and the number of training images:
// how deep the data says to unfreeze, limited by how much the data can
// train without overfitting. The rule, with the onset the first stage
// whose shift reaches Threshold:
//
//	                 small shift          large shift from onset
//	< SmallData      all (head only)      layer3 (layer4 trains)
//	< LargeData      layer3               the stage before the onset, at most layer1 (layer2 and up train)
//	≥ LargeData      layer2               the stage before the onset (none when the stem shifts)
//
// Features that fit (small shift) need the least change: the head alone
// on small data, the top stages with more. A large shift starting at
// some stage means the stages from there on see inputs unlike their
// training data: they are worth training, as far as the data allows, and
// their BatchNorm statistics are adapted first (ChooseBN).
func SuggestFreeze(r *Report, nTrain int) (point, why string) {
	mode, _ := ChooseBN(r)
	size := fmt.Sprintf("%d training images", nTrain)
	if mode == "frozen" {
		switch {
		case nTrain < SmallData:
			return "all", fmt.Sprintf("small shift and %s (< %d): the stored features fit; train the head alone", size, SmallData)
		case nTrain < LargeData:
			return "layer3", fmt.Sprintf("small shift and %s: train layer4 and the head", size)
		}
		return "layer2", fmt.Sprintf("small shift and %s (≥ %d): train layer3, layer4 and the head", size, LargeData)
	}
	onset := r.onset()
	point = before(onset)
	switch {
	case nTrain < SmallData:
		return "layer3", fmt.Sprintf("shift from %s on, but only %s (< %d): train layer4 alone on adapted statistics", onset, size, SmallData)
	case nTrain < LargeData && depth(point) < depth("layer1"):
		return "layer1", fmt.Sprintf("shift from %s on and %s (< %d): train layer2 and up", onset, size, LargeData)
	}
	return point, fmt.Sprintf("shift from %s on and %s: train from %s on", onset, size, onset)
}

// freezePoints are finetune's freeze points, from nothing frozen to all.
var freezePoints = []string{"none", "stem", "layer1", "layer2", "layer3", "layer4", "all"}

func depth(point string) int {
	for i, p := range freezePoints {
		if p == point {
			return i
		}
	}
	return -1
}

// before returns the freeze point that leaves stage and everything after
// it trainable.
func before(stage string) string { return freezePoints[depth(stage)-1] }
