package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// newRand returns the generator the splits draw from: PCG seeded by seed.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// byClass groups sample indices by label, in index order, for the labels
// present, sorted. It rejects empty and negative labels.
func byClass(labels []int) (classes []int, members map[int][]int, err error) {
	if len(labels) == 0 {
		return nil, nil, errors.New("no labels")
	}
	members = map[int][]int{}
	for i, l := range labels {
		if l < 0 {
			return nil, nil, fmt.Errorf("label %d of sample %d is negative", l, i)
		}
		members[l] = append(members[l], i)
	}
	for l := range members {
		classes = append(classes, l)
	}
	slices.Sort(classes)
	return classes, members, nil
}

// StratifiedSplit splits sample indices 0..len(labels)-1 into a training
// and a validation set keeping the class proportions: each class is
// shuffled with a PCG generator seeded by seed and round(n*valFraction) of
// its n samples go to validation, but at least one and at most n-1 when
// n >= 2 (a class with a single sample stays in training). The two sets
// are disjoint, cover every index, are sorted, and depend only on labels,
// valFraction and seed.
func StratifiedSplit(labels []int, valFraction float64, seed uint64) (train, val []int, err error) {
	if !(valFraction > 0 && valFraction < 1) {
		return nil, nil, fmt.Errorf("data: stratified split: validation fraction %v must be in (0, 1)", valFraction)
	}
	classes, members, err := byClass(labels)
	if err != nil {
		return nil, nil, fmt.Errorf("data: stratified split: %w", err)
	}
	r := newRand(seed)
	for _, c := range classes {
		idx := slices.Clone(members[c])
		r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		n := len(idx)
		nVal := int(math.Round(float64(n) * valFraction))
		if n >= 2 {
			nVal = min(max(nVal, 1), n-1)
		} else {
			nVal = 0
		}
		val = append(val, idx[:nVal]...)
		train = append(train, idx[nVal:]...)
	}
	slices.Sort(train)
	slices.Sort(val)
	return train, val, nil
}

// A Fold is one round of k-fold cross-validation: sorted sample indices
// to train on and to validate on.
type Fold struct {
	Train, Val []int
}

// StratifiedKFold splits sample indices into k folds as scikit-learn's
// StratifiedKFold(k, shuffle=True): every index is in exactly one
// validation fold, each class is spread over the folds as evenly as
// possible (the counts of a class in two folds differ by at most one, and
// so do fold sizes), and which samples go where is drawn from a PCG
// generator seeded by seed. It fails when k < 2 or when a class has fewer
// than k samples, naming the class.
func StratifiedKFold(labels []int, k int, seed uint64) ([]Fold, error) {
	if k < 2 {
		return nil, fmt.Errorf("data: stratified k-fold: k = %d, need at least 2 folds", k)
	}
	classes, members, err := byClass(labels)
	if err != nil {
		return nil, fmt.Errorf("data: stratified k-fold: %w", err)
	}
	for _, c := range classes {
		if n := len(members[c]); n < k {
			return nil, fmt.Errorf("data: stratified k-fold: class %d has %d samples, fewer than k = %d folds", c, n, k)
		}
	}
	// scikit-learn's allocation: deal the samples, sorted by class, to the
	// folds in turn; allocation[f][i] is how many of class classes[i] fold
	// f receives.
	allocation := make([][]int, k)
	for f := range allocation {
		allocation[f] = make([]int, len(classes))
	}
	pos := 0
	for i, c := range classes {
		for range members[c] {
			allocation[pos%k][i]++
			pos++
		}
	}
	r := newRand(seed)
	foldOf := make([]int, len(labels))
	for i, c := range classes {
		var folds []int
		for f := range k {
			for range allocation[f][i] {
				folds = append(folds, f)
			}
		}
		r.Shuffle(len(folds), func(a, b int) { folds[a], folds[b] = folds[b], folds[a] })
		for j, idx := range members[c] {
			foldOf[idx] = folds[j]
		}
	}
	out := make([]Fold, k)
	for idx, f := range foldOf {
		for g := range out {
			if g == f {
				out[g].Val = append(out[g].Val, idx)
			} else {
				out[g].Train = append(out[g].Train, idx)
			}
		}
	}
	return out, nil
}
