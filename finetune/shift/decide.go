package shift

import (
	"fmt"
	"math"
	"strings"
)

// Threshold is the shift (Report.Shift) from which re-estimating the
// BatchNorm statistics on the training images (batchnorm: adapt) trains a
// better head on a frozen backbone than keeping the stored ones. It was
// set by the experiment of bench/bnauto (see bench/bnauto/RESULTS.md):
// Fashion-MNIST class pairs as they are and dimmed, washed out, tinted and
// inverted, seen by a resnet18 trained on other Fashion-MNIST classes,
// each trained both ways; Threshold is the cut on the measured shift that
// loses the least test accuracy over those tasks. There the unshifted
// tasks measured 0.014 to 0.14 and the clearly shifted ones (adapt better
// by 2 to 22 points) 0.18 to 2.2; the tasks in between differed by about
// a point either way.
const Threshold = 0.176

// decisive returns the stages whose shift Report.Shift averages: all
// but the last that holds BatchNorm layers (a ResNet's stem to layer3).
// The last is left out: its statistics change with the classes
// themselves (the last stage encodes them), so a task of images like the
// source's but of other classes shifts it as much as a change of the
// images shifts the earlier stages.
func (r *Report) decisive() []StageShift {
	var out []StageShift
	for _, s := range r.Stages {
		if s.Layers > 0 {
			out = append(out, s)
		}
	}
	if len(out) > 1 {
		out = out[:len(out)-1]
	}
	return out
}

// Shift returns the dataset's shift: the mean of the stage shifts of the
// stem and layer1 to layer3. It is the statistic ChooseBN compares with
// Threshold.
func (r *Report) Shift() float64 {
	sum, n := 0.0, 0
	for _, s := range r.decisive() {
		sum += s.Divergence
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// onset returns the first stage whose shift reaches Threshold, or "" when
// none does.
func (r *Report) onset() string {
	for _, s := range r.decisive() {
		if s.Divergence >= Threshold {
			return s.Name
		}
	}
	return ""
}

// ChooseBN decides train.batchnorm: auto for a frozen backbone: "adapt"
// when the measured shift (Report.Shift) reaches Threshold, "frozen"
// otherwise, and says why.
func ChooseBN(r *Report) (mode, why string) {
	m := r.Shift()
	if m >= Threshold {
		return "adapt", fmt.Sprintf("BatchNorm shift %.3g ≥ %.3g (from %s on): the stored statistics do not fit these images", m, Threshold, r.onset())
	}
	return "frozen", fmt.Sprintf("BatchNorm shift %.3g < %.3g: the stored statistics fit these images", m, Threshold)
}

// Normalization returns a warning when the images, as normalised,
// suggest that the normalisation does not fit: the stem's shift reaches
// Threshold and a channel's mean is more than one from zero or its
// standard deviation more than twice or less than half one. Weights see
// images of zero mean and unit variance per channel when normalised with
// the statistics they were trained with; the stem's shift alone may also
// come from what the images show. "" when it fits.
func (r *Report) Normalization() string {
	stem := -1.0
	if len(r.Stages) > 0 && r.Stages[0].Layers > 0 {
		stem = r.Stages[0].Divergence // the first stage sees the images
	}
	if stem < Threshold {
		return ""
	}
	for c := range r.Input.Mean {
		if m, sd := r.Input.Mean[c], r.Input.Std[c]; math.Abs(m) > 1 || sd > 2 || sd < 0.5 {
			return fmt.Sprintf("the normalised images have per-channel mean %s and standard deviation %s, far from 0 and 1, "+
				"and the stem's BatchNorm shift is %.3g (≥ %.3g): data.mean and data.std may not be those the weights were trained with",
				list(r.Input.Mean), list(r.Input.Std), stem, Threshold)
		}
	}
	return ""
}

func list(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Implication says in one line what the shift implies for fine-tuning.
func (r *Report) Implication() string {
	mode, _ := ChooseBN(r)
	if mode == "adapt" {
		return fmt.Sprintf("large shift (%.3g ≥ %.3g) from %s on: the source's BatchNorm statistics do not fit these images; batchnorm: adapt",
			r.Shift(), Threshold, r.onset())
	}
	return fmt.Sprintf("small shift (%.3g < %.3g): the stored BatchNorm statistics fit these images; batchnorm: frozen", r.Shift(), Threshold)
}

// Table formats the shift per stage and overall, one line each.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %6s  %s\n", "stage", "layers", "shift (symmetric KL)")
	for _, s := range r.Stages {
		fmt.Fprintf(&b, "%-8s %6d  %.4f\n", s.Name, s.Layers, s.Divergence)
	}
	d := r.decisive()
	span := ""
	if len(d) > 0 {
		span = d[0].Name + " to " + d[len(d)-1].Name
	}
	fmt.Fprintf(&b, "shift %.4f (mean of %s; threshold %.3g), %d images\n", r.Shift(), span, Threshold, r.Images)
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
		return "layer3", fmt.Sprintf("shift from %s on, but only %s (< %d): train layer4 and the head, on adapted statistics", onset, size, SmallData)
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
