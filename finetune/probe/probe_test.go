package probe

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/finetune-go/finetune/internal/testref"
	"github.com/finetune-go/finetune/torch"
	"github.com/stretchr/testify/require"
)

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

// sklearnCase is one problem of scripts/fixtures/probe.py.
type sklearnCase struct {
	Name      string    `json:"name"`
	Classes   int       `json:"classes"`
	N         int64     `json:"n"`
	D         int64     `json:"d"`
	C         float64   `json:"c"`
	X         []float64 `json:"x"`
	Y         []int     `json:"y"`
	Test      []float64 `json:"test"`
	Coef      []float64 `json:"coef"`
	Intercept []float64 `json:"intercept"`
	Objective float64   `json:"objective"`
	Proba     []float64 `json:"proba"`
}

func features(t *testing.T, v []float64, d int64) *torch.Tensor {
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return must[*torch.Tensor](t)(torch.FromSlice(f, int64(len(v))/d, d))
}

// TestMatchesScikitLearn fits the probe on the fixture's features and
// compares with scikit-learn's LogisticRegression: the same minimum of
// the same objective, the same weights and probabilities.
func TestMatchesScikitLearn(t *testing.T) {
	var cases []sklearnCase
	testref.JSON(t, "probe.py", &cases)
	require.NotEmpty(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			s := torch.NewScope()
			defer s.Close()
			m := must[*Model](t)(Fit(features(t, c.X, c.D), c.Y, c.Classes, Options{C: c.C, Tol: 1e-10, MaxIter: 10000}))
			require.True(t, m.Converged)
			require.InDelta(t, c.Objective, m.Objective, 1e-10*c.Objective, "objective")
			// scikit-learn keeps one row for two classes: the second's.
			coef, intercept := m.Coef, m.Intercept
			if c.Classes == 2 {
				for j := range coef[0] {
					require.InDelta(t, -coef[1][j], coef[0][j], 1e-9, "binary rows are opposite")
				}
				coef, intercept = coef[1:], intercept[1:]
			}
			for i, row := range coef {
				for j, v := range row {
					want := c.Coef[i*int(c.D)+j]
					require.InDelta(t, want, v, 2e-5*math.Max(1, math.Abs(want)), "coef[%d][%d]", i, j)
				}
				require.InDelta(t, c.Intercept[i], intercept[i], 2e-5*math.Max(1, math.Abs(c.Intercept[i])), "intercept[%d]", i)
			}
			proba := must[[]float64](t)(must[*torch.Tensor](t)(m.Proba(features(t, c.Test, c.D))).Float64s())
			require.Len(t, proba, len(c.Proba))
			for i, want := range c.Proba {
				require.InDelta(t, want, proba[i], 1e-6, "proba %d", i)
			}
		})
	}
}

func TestFitErrors(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	x := must[*torch.Tensor](t)(torch.Zeros([]int64{4, 3}))
	cases := []struct {
		name    string
		x       *torch.Tensor
		y       []int
		classes int
		want    string
	}{
		{"labels", x, []int{0, 1, 0}, 2, "4 feature rows but 3 labels"},
		{"label range", x, []int{0, 1, 0, 2}, 2, "label 2 of sample 3"},
		{"one class", x, []int{0, 0, 0, 0}, 1, "at least 2 classes"},
		{"shape", must[*torch.Tensor](t)(torch.Zeros([]int64{4})), []int{0, 1, 0, 1}, 2, "want N×D"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Fit(c.x, c.y, c.classes, Options{})
			require.ErrorContains(t, err, c.want)
		})
	}
}

// blobs returns n samples of k classes in d dimensions, centred on
// separated means, drawn from a seeded generator.
func blobs(t *testing.T, n, k, d int, seed uint64) (*torch.Tensor, []int) {
	g := must[*torch.Generator](t)(torch.NewGenerator(seed))
	defer g.Free()
	x := must[*torch.Tensor](t)(torch.Randn([]int64{int64(n), int64(d)}, g))
	y := make([]int, n)
	shift := make([]float32, n*d)
	for i := range y {
		y[i] = i % k
		shift[i*d+y[i]%d] = 3
	}
	st := must[*torch.Tensor](t)(torch.FromSlice(shift, int64(n), int64(d)))
	return must[*torch.Tensor](t)(x.Add(st)), y
}

func TestFitCV(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	x, y := blobs(t, 120, 3, 6, 1)
	m, rep, err := FitCV(x, y, 3, CVOptions{Folds: 3, Seed: 4})
	require.NoError(t, err)
	require.Equal(t, DefaultCs, rep.Cs)
	require.Len(t, rep.Accuracy, len(DefaultCs))
	require.Len(t, rep.Accuracy[0], 3)
	require.Equal(t, rep.C, m.C)
	require.Greater(t, rep.BestAccuracy, 0.7)
	for _, acc := range rep.Mean {
		require.LessOrEqual(t, acc, rep.BestAccuracy)
	}
	acc := must[float64](t)(m.Accuracy(x, y))
	require.Greater(t, acc, 0.7)
}

// TestSearchReproducible runs a small search twice with one seed and once
// with another: the same seed writes the same JSON.
func TestSearchReproducible(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	x, y := blobs(t, 90, 3, 8, 2)
	opts := SearchOptions{Folds: 3, Seed: 7, LRs: []float64{1e-3, 3e-2}, WDs: []float64{0, 0.1}, Epochs: 8,
		BatchSize: 16, LabelSmoothing: 0.1, Cs: []float64{0.01, 1, 100}}
	run := func(opts SearchOptions) []byte {
		r := must[*SearchResult](t)(Search(context.Background(), x, y, 3, opts))
		require.Len(t, r.Trials, 4)
		require.Len(t, r.Probe.Mean, 3)
		for _, tr := range r.Trials {
			require.Len(t, tr.FoldAccuracy, 3)
			require.LessOrEqual(t, tr.Accuracy, r.Best.Accuracy)
		}
		return must[[]byte](t)(json.Marshal(r))
	}
	first := run(opts)
	require.Equal(t, string(first), string(run(opts)), "same seed, same result")
	opts.Seed = 8
	require.NotEqual(t, string(first), string(run(opts)), "another seed draws other folds")
	var decoded SearchResult
	require.NoError(t, json.Unmarshal(first, &decoded))
	require.Equal(t, uint64(7), decoded.Seed)
	require.Greater(t, decoded.Best.Accuracy, 0.5)
}
