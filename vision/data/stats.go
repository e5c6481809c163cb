package data

import (
	"fmt"
	"slices"
	"strings"
)

// Labels returns the label of every sample, in sample order: the input of
// StratifiedSplit and StratifiedKFold.
func (d *Dataset) Labels() []int {
	labels := make([]int, len(d.Samples))
	for i, s := range d.Samples {
		labels[i] = s.Label
	}
	return labels
}

// Subset returns the dataset restricted to the samples at the given
// indices, in that order, with the same classes: a split of d.
func (d *Dataset) Subset(indices []int) (*Dataset, error) {
	sub := &Dataset{Root: d.Root, Classes: d.Classes, Samples: make([]Sample, len(indices))}
	for i, idx := range indices {
		if idx < 0 || idx >= len(d.Samples) {
			return nil, fmt.Errorf("data: subset of %s: index %d out of range [0, %d)", d.Root, idx, len(d.Samples))
		}
		sub.Samples[i] = d.Samples[idx]
	}
	return sub, nil
}

// ClassCounts returns the number of samples of each class.
func (d *Dataset) ClassCounts() []int {
	counts := make([]int, len(d.Classes))
	for _, s := range d.Samples {
		counts[s.Label]++
	}
	return counts
}

// Imbalance returns the ratio of the largest class to the smallest: 1 for
// a balanced dataset, +Inf when a class has no samples (possible only in a
// Subset).
func (d *Dataset) Imbalance() float64 {
	counts := d.ClassCounts()
	return float64(slices.Max(counts)) / float64(slices.Min(counts))
}

// ClassWeights returns per-class loss weights that balance the classes, as
// scikit-learn's compute_class_weight("balanced"):
// len(Samples) / (len(Classes) * count). A class without samples gets 0.
func (d *Dataset) ClassWeights() []float64 {
	counts := d.ClassCounts()
	weights := make([]float64, len(counts))
	for c, n := range counts {
		if n > 0 {
			weights[c] = float64(len(d.Samples)) / float64(len(counts)*n)
		}
	}
	return weights
}

// Summary describes the dataset for a log: its size, each class's count,
// share and balancing weight, and the imbalance ratio.
func (d *Dataset) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d classes, %d images, %d ignored entries\n",
		d.Root, len(d.Classes), len(d.Samples), d.Ignored)
	width := len("class")
	for _, c := range d.Classes {
		width = max(width, len(c))
	}
	counts, weights := d.ClassCounts(), d.ClassWeights()
	fmt.Fprintf(&b, "  %-*s %7s %6s %7s\n", width, "class", "images", "share", "weight")
	for i, c := range d.Classes {
		share := 100 * float64(counts[i]) / float64(max(len(d.Samples), 1))
		fmt.Fprintf(&b, "  %-*s %7d %5.1f%% %7.3f\n", width, c, counts[i], share, weights[i])
	}
	fmt.Fprintf(&b, "imbalance (largest/smallest class): %.2f", d.Imbalance())
	return b.String()
}

// MatchClasses checks that every dataset in others has exactly the classes
// of ref, in the same order, so that labels mean the same thing in train,
// validation and test folders. The error names the folder that differs and
// the classes it lacks or adds.
func MatchClasses(ref *Dataset, others ...*Dataset) error {
	for _, o := range others {
		if slices.Equal(ref.Classes, o.Classes) {
			continue
		}
		var missing, extra []string
		for _, c := range ref.Classes {
			if !slices.Contains(o.Classes, c) {
				missing = append(missing, c)
			}
		}
		for _, c := range o.Classes {
			if !slices.Contains(ref.Classes, c) {
				extra = append(extra, c)
			}
		}
		return fmt.Errorf("data: classes of %s differ from those of %s: missing %q, extra %q",
			o.Root, ref.Root, missing, extra)
	}
	return nil
}
