package probe

import (
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/vision/data"
)

// CVOptions configure FitCV.
type CVOptions struct {
	// Folds of the stratified k-fold cross-validation; 0 means 5.
	Folds int
	// Seed draws the folds (data.StratifiedKFold).
	Seed uint64
	// Cs is the grid of C values, ascending; nil means DefaultCs.
	Cs []float64
	// Options are the final fit's tolerance and iteration bound (their C
	// is ignored). The folds' fits, which only rank the Cs and each start
	// from the previous C's solution, stop at cvTol and cvMaxIter unless
	// Options ask for less.
	Options Options
}

// DefaultCs is scikit-learn LogisticRegressionCV's kind of grid: 1e-4 to
// 1e4, one value per decade.
var DefaultCs = []float64{1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1e3, 1e4}

func (o CVOptions) withDefaults() CVOptions {
	if o.Folds == 0 {
		o.Folds = 5
	}
	if o.Cs == nil {
		o.Cs = DefaultCs
	}
	return o
}

// The folds' fits' tolerance and iterations, as LogisticRegressionCV's
// defaults.
const (
	cvTol     = 1e-4
	cvMaxIter = 100
)

// CVReport is the outcome of FitCV.
type CVReport struct {
	Cs []float64 `json:"cs"`
	// Accuracy is each C's validation accuracy per fold; Mean its mean
	// over the folds.
	Accuracy [][]float64 `json:"fold_accuracy"`
	Mean     []float64   `json:"accuracy"`
	// C is the chosen value: the best mean accuracy, the smallest C on a
	// tie (the stronger penalty).
	C            float64 `json:"c"`
	BestAccuracy float64 `json:"best_accuracy"`
}

// FitCV chooses the probe's C by stratified k-fold cross-validation on x
// and y (mean validation accuracy over the folds; along the grid each fit
// starts from the previous C's solution, as LogisticRegressionCV does),
// then fits on all of x and y with it.
func FitCV(x *torch.Tensor, y []int, classes int, opts CVOptions) (*Model, *CVReport, error) {
	opts = opts.withDefaults()
	folds, err := data.StratifiedKFold(y, opts.Folds, opts.Seed)
	if err != nil {
		return nil, nil, fmt.Errorf("probe: %w", err)
	}
	p, err := newProblem(x, y, classes)
	if err != nil {
		return nil, nil, err
	}
	defer p.free()
	rep, err := crossValidate(p, folds, opts)
	if err != nil {
		return nil, nil, err
	}
	o := opts.Options
	o.C = rep.C
	m, err := p.fit(nil, o.withDefaults(), nil)
	return m, rep, err
}

// crossValidate scores every C of opts on each fold.
func crossValidate(p *problem, folds []data.Fold, opts CVOptions) (*CVReport, error) {
	rep := &CVReport{Cs: opts.Cs, Accuracy: make([][]float64, len(opts.Cs)), Mean: make([]float64, len(opts.Cs))}
	for f, fold := range folds {
		train, err := p.rows(fold.Train)
		if err != nil {
			return nil, err
		}
		val, err := p.rows(fold.Val)
		if err != nil {
			train.free()
			return nil, err
		}
		err = func() error {
			defer train.free()
			defer val.free()
			theta := make([]float64, p.k*p.d+p.k)
			for i, c := range opts.Cs {
				o := opts.Options
				o.C, o.Tol = c, math.Max(o.Tol, cvTol)
				if o.MaxIter == 0 || o.MaxIter > cvMaxIter {
					o.MaxIter = cvMaxIter
				}
				if _, err := train.fit(theta, o, theta); err != nil {
					return fmt.Errorf("fold %d, C %g: %w", f+1, c, err)
				}
				acc, err := val.accuracy(theta)
				if err != nil {
					return err
				}
				rep.Accuracy[i] = append(rep.Accuracy[i], acc)
				rep.Mean[i] += acc / float64(len(folds))
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
	}
	rep.BestAccuracy = math.Inf(-1)
	for i, acc := range rep.Mean {
		if acc > rep.BestAccuracy+1e-12 {
			rep.C, rep.BestAccuracy = opts.Cs[i], acc
		}
	}
	return rep, nil
}
