package data

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// labelsOf returns counts[c] samples of each class c, interleaved so that
// classes are not contiguous.
func labelsOf(counts ...int) []int {
	var labels []int
	left := slices.Clone(counts)
	for more := true; more; {
		more = false
		for c := range left {
			if left[c] > 0 {
				labels = append(labels, c)
				left[c]--
				more = true
			}
		}
	}
	return labels
}

func countByClass(labels, idx []int) map[int]int {
	m := map[int]int{}
	for _, i := range idx {
		m[labels[i]]++
	}
	return m
}

func TestStratifiedSplit(t *testing.T) {
	tests := []struct {
		name    string
		labels  []int
		frac    float64
		wantVal map[int]int // validation samples per class
	}{
		{"proportional", labelsOf(100, 50, 10), 0.2, map[int]int{0: 20, 1: 10, 2: 2}},
		{"rounding", labelsOf(7, 3), 0.25, map[int]int{0: 2, 1: 1}},
		{"at least one per class", labelsOf(40, 2), 0.1, map[int]int{0: 4, 1: 1}},
		{"at least one left to train", labelsOf(4, 2), 0.9, map[int]int{0: 3, 1: 1}},
		{"singleton class stays in train", labelsOf(10, 1), 0.3, map[int]int{0: 3}},
		{"sparse labels", []int{5, 5, 5, 5, 9, 9, 9, 9}, 0.5, map[int]int{5: 2, 9: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			train, val, err := StratifiedSplit(tt.labels, tt.frac, 42)
			require.NoError(t, err)
			require.Equal(t, tt.wantVal, countByClass(tt.labels, val))
			// Disjoint, covering, sorted.
			all := append(slices.Clone(train), val...)
			slices.Sort(all)
			for i := range all {
				require.Equal(t, i, all[i])
			}
			require.True(t, slices.IsSorted(train))
			require.True(t, slices.IsSorted(val))
			// Reproducible from the seed; another seed picks other samples.
			train2, val2, err := StratifiedSplit(tt.labels, tt.frac, 42)
			require.NoError(t, err)
			require.Equal(t, train, train2)
			require.Equal(t, val, val2)
		})
	}
	_, a, _ := StratifiedSplit(labelsOf(100, 100), 0.2, 1)
	_, b, _ := StratifiedSplit(labelsOf(100, 100), 0.2, 2)
	require.NotEqual(t, a, b)
}

func TestStratifiedSplitErrors(t *testing.T) {
	tests := []struct {
		name    string
		labels  []int
		frac    float64
		wantErr string
	}{
		{"no labels", nil, 0.2, "no labels"},
		{"negative label", []int{0, 1, -1}, 0.2, "label -1 of sample 2 is negative"},
		{"zero fraction", []int{0, 1}, 0, "validation fraction 0 must be in (0, 1)"},
		{"whole fraction", []int{0, 1}, 1, "must be in (0, 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := StratifiedSplit(tt.labels, tt.frac, 1)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestStratifiedKFold(t *testing.T) {
	tests := []struct {
		name   string
		labels []int
		k      int
	}{
		{"even", labelsOf(50, 50), 5},
		{"uneven", labelsOf(23, 11, 7), 5},
		{"k equals smallest class", labelsOf(30, 3), 3},
		{"sparse labels", []int{3, 3, 3, 8, 8, 8, 8, 3, 8}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			folds, err := StratifiedKFold(tt.labels, tt.k, 7)
			require.NoError(t, err)
			require.Len(t, folds, tt.k)
			seen := make([]int, len(tt.labels))
			sizes := make([]int, tt.k)
			perClass := map[int][]int{}
			for f, fold := range folds {
				require.Len(t, fold.Train, len(tt.labels)-len(fold.Val))
				require.True(t, slices.IsSorted(fold.Val))
				require.True(t, slices.IsSorted(fold.Train))
				for _, i := range fold.Val {
					seen[i]++
					require.False(t, slices.Contains(fold.Train, i), "index %d in train and val of fold %d", i, f)
				}
				sizes[f] = len(fold.Val)
				for c, n := range countByClass(tt.labels, fold.Val) {
					perClass[c] = append(perClass[c], n)
				}
			}
			// Every sample is validated exactly once.
			for i, n := range seen {
				require.Equal(t, 1, n, "sample %d", i)
			}
			// Fold sizes and per-class counts differ by at most one.
			require.LessOrEqual(t, slices.Max(sizes)-slices.Min(sizes), 1, "fold sizes %v", sizes)
			for c, ns := range perClass {
				require.Len(t, ns, tt.k, "class %d missing from a fold", c)
				require.LessOrEqual(t, slices.Max(ns)-slices.Min(ns), 1, "class %d counts %v", c, ns)
			}
			again, err := StratifiedKFold(tt.labels, tt.k, 7)
			require.NoError(t, err)
			require.Equal(t, folds, again)
		})
	}
	a, _ := StratifiedKFold(labelsOf(50, 50), 5, 1)
	b, _ := StratifiedKFold(labelsOf(50, 50), 5, 2)
	require.NotEqual(t, a, b)
}

func TestStratifiedKFoldErrors(t *testing.T) {
	tests := []struct {
		name    string
		labels  []int
		k       int
		wantErr string
	}{
		{"k too small", labelsOf(5, 5), 1, "k = 1, need at least 2 folds"},
		{"small class", labelsOf(10, 10, 2), 3, "class 2 has 2 samples, fewer than k = 3 folds"},
		{"no labels", nil, 2, "no labels"},
		{"negative label", []int{0, -3}, 2, "label -3 of sample 1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := StratifiedKFold(tt.labels, tt.k, 1)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
