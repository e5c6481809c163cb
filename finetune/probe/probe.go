// Package probe gives a fine-tuning run baselines and settings that need
// no tuning, computed in seconds on cached backbone features (the pooled
// N×D features of a frozen backbone) rather than on images.
//
// Fit is a linear probe: multinomial logistic regression with an L2
// penalty, fitted to convergence with L-BFGS. It minimises exactly
// scikit-learn's LogisticRegression(multi_class="multinomial",
// penalty="l2") objective,
//
//	½‖W‖² + C·Σᵢ −log softmax(W·xᵢ + b)[yᵢ]
//
// (the intercept b unpenalised), so the two agree to the solvers'
// tolerance. FitCV chooses C by stratified k-fold cross-validation over a
// grid, as LogisticRegressionCV, and refits on all the data. Search runs,
// on the same folds, a small grid over the learning rate and weight decay
// of the run's head trained with AdamW on the features, so that the long
// run starts from settings that were checked.
package probe

import (
	"errors"
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
)

// Options configure Fit. The zero value is valid: scikit-learn's C = 1,
// converged well past what ranking predictions needs.
type Options struct {
	// C is the inverse of the L2 penalty's strength, as scikit-learn's;
	// 0 means 1.
	C float64
	// Tol stops L-BFGS when the largest gradient component of the mean
	// objective (the objective divided by C·N, in standardised
	// coordinates) is at most Tol; 0 means 1e-6.
	Tol float64
	// MaxIter bounds the L-BFGS iterations; 0 means 1000.
	MaxIter int
}

func (o Options) withDefaults() Options {
	if o.C == 0 {
		o.C = 1
	}
	if o.Tol == 0 {
		o.Tol = 1e-6
	}
	if o.MaxIter == 0 {
		o.MaxIter = 1000
	}
	return o
}

// Model is a fitted probe.
type Model struct {
	// Coef holds one row of D weights per class; Intercept one bias per
	// class (summing to zero).
	Coef      [][]float64
	Intercept []float64
	C         float64
	// Iterations L-BFGS ran; Converged reports whether it reached the
	// tolerance (or could decrease the objective no further).
	Iterations int
	Converged  bool
	// Objective is the minimised ½‖W‖² + C·Σ log loss.
	Objective float64
}

// Fit fits the probe to features x (N×D, any floating dtype and device)
// with labels y in [0, classes).
func Fit(x *torch.Tensor, y []int, classes int, opts Options) (*Model, error) {
	p, err := newProblem(x, y, classes)
	if err != nil {
		return nil, err
	}
	defer p.free()
	return p.fit(nil, opts.withDefaults(), nil)
}

// problem is a fit's data as float64 tensors on the features' device.
// The features are standardised, x̃ = (x − mean)/scale per feature, and
// the optimiser works on V = W·diag(scale) and c = W·mean + b, where the
// penalty is Σ V²/scale²: the same objective and minimum in better
// conditioned coordinates (pooled ReLU features have widely different
// scales, which slows L-BFGS on the raw ones by orders of magnitude).
type problem struct {
	x, onehot   *torch.Tensor // N×D standardised, N×K float64
	mean, scale []float64
	n, d, k     int
}

func newProblem(x *torch.Tensor, y []int, classes int) (*problem, error) {
	if x.Dim() != 2 {
		return nil, fmt.Errorf("probe: features: want N×D, got shape %v", x.Shape())
	}
	n, d := int(x.Shape()[0]), int(x.Shape()[1])
	if n != len(y) {
		return nil, fmt.Errorf("probe: %d feature rows but %d labels", n, len(y))
	}
	if classes < 2 {
		return nil, fmt.Errorf("probe: need at least 2 classes, got %d", classes)
	}
	labels := make([]int64, n)
	for i, c := range y {
		if c < 0 || c >= classes {
			return nil, fmt.Errorf("probe: label %d of sample %d is not in [0, %d)", c, i, classes)
		}
		labels[i] = int64(c)
	}
	p := &problem{n: n, d: d, k: classes}
	s := torch.NewScope()
	defer s.Close()
	err := p.standardise(x)
	var lt, oh *torch.Tensor
	if err == nil {
		lt, err = torch.FromSlice(labels)
	}
	if err == nil {
		lt, err = lt.ToDevice(x.Device())
	}
	if err == nil {
		oh, err = torch.OneHot(lt, int64(classes))
	}
	if err == nil {
		oh, err = oh.ToDType(torch.Float64)
	}
	if err != nil {
		p.x.Free()
		return nil, fmt.Errorf("probe: %w", err)
	}
	p.onehot = oh.Keep()
	return p, nil
}

// standardise sets p.x, p.mean and p.scale from the features x; a
// constant feature keeps scale 1.
func (p *problem) standardise(x *torch.Tensor) error {
	xd, err := x.ToDType(torch.Float64)
	if err != nil {
		return err
	}
	mean, err := xd.MeanDims([]int64{0}, true)
	if err != nil {
		return err
	}
	std, err := xd.Std([]int64{0}, false, true)
	if err != nil {
		return err
	}
	if p.mean, err = mean.Float64s(); err != nil {
		return err
	}
	if p.scale, err = std.Float64s(); err != nil {
		return err
	}
	for j, v := range p.scale {
		if !(v > 1e-12) {
			p.scale[j] = 1
		}
	}
	st, err := torch.FromSlice(p.scale, 1, int64(p.d))
	if err == nil {
		st, err = st.ToDevice(x.Device())
	}
	if err == nil {
		xd, err = xd.Sub(mean)
	}
	if err == nil {
		xd, err = xd.Div(st)
	}
	if err != nil {
		return err
	}
	p.x = xd.Keep()
	return nil
}

func (p *problem) free() {
	p.x.Free()
	p.onehot.Free()
}

// rows returns the problem restricted to the samples idx, in the same
// coordinates.
func (p *problem) rows(idx []int) (*problem, error) {
	s := torch.NewScope()
	defer s.Close()
	ix := make([]int64, len(idx))
	for i, v := range idx {
		ix[i] = int64(v)
	}
	it, err := torch.FromSlice(ix)
	if err == nil {
		it, err = it.ToDevice(p.x.Device())
	}
	var x, oh *torch.Tensor
	if err == nil {
		x, err = p.x.IndexSelect(0, it)
	}
	if err == nil {
		oh, err = p.onehot.IndexSelect(0, it)
	}
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	return &problem{x: x.Keep(), onehot: oh.Keep(), mean: p.mean, scale: p.scale, n: len(idx), d: p.d, k: p.k}, nil
}

// params makes tensors, on the problem's device, of the weights
// (K·D, row-major) and intercepts (K) that follow them in theta.
func (p *problem) params(theta []float64) (w, b *torch.Tensor, err error) {
	dev := p.x.Device()
	if w, err = torch.FromSlice(theta[:p.k*p.d], int64(p.k), int64(p.d)); err == nil {
		w, err = w.ToDevice(dev)
	}
	if err == nil {
		if b, err = torch.FromSlice(theta[p.k*p.d:]); err == nil {
			b, err = b.ToDevice(dev)
		}
	}
	return w, b, err
}

// logits returns x̃·Vᵀ + c for theta = (V, c).
func (p *problem) logits(theta []float64) (*torch.Tensor, error) {
	v, c, err := p.params(theta)
	if err != nil {
		return nil, err
	}
	return torch.Linear(p.x, v, c)
}

// eval returns the mean objective (1/N)·Σ log loss + ½λ‖W‖², with
// λ = 1/(C·N), at theta = (V, c), and writes its gradient into grad.
func (p *problem) eval(theta, grad []float64, lambda float64) (float64, error) {
	s := torch.NewScope()
	defer s.Close()
	logits, err := p.logits(theta)
	if err != nil {
		return 0, err
	}
	logp, err := torch.LogSoftmax(logits, 1)
	if err != nil {
		return 0, err
	}
	picked, err := logp.Mul(p.onehot)
	if err != nil {
		return 0, err
	}
	total, err := picked.Sum()
	if err != nil {
		return 0, err
	}
	ll, err := total.Item()
	if err != nil {
		return 0, err
	}
	// dL/dlogits = (softmax − onehot)/N
	prob, err := logp.Exp()
	if err != nil {
		return 0, err
	}
	diff, err := prob.Sub(p.onehot)
	if err != nil {
		return 0, err
	}
	dt, err := diff.Transpose(0, 1)
	if err != nil {
		return 0, err
	}
	gv, err := dt.Matmul(p.x)
	if err != nil {
		return 0, err
	}
	gc, err := diff.SumDims([]int64{0}, false)
	if err != nil {
		return 0, err
	}
	gvv, err := gv.Float64s()
	if err != nil {
		return 0, err
	}
	gcv, err := gc.Float64s()
	if err != nil {
		return 0, err
	}
	nf := float64(p.n)
	penalty := 0.0
	for i, g := range gvv {
		sc := p.scale[i%p.d]
		v := theta[i] / (sc * sc)
		grad[i] = g/nf + lambda*v
		penalty += theta[i] * v
	}
	for i, g := range gcv {
		grad[p.k*p.d+i] = g / nf
	}
	f := -ll/nf + 0.5*lambda*penalty
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("probe: the objective is not finite")
	}
	return f, nil
}

// fit minimises the objective from theta0 (zeros when nil), leaves the
// solution in theta when it is not nil, and returns the model.
func (p *problem) fit(theta0 []float64, o Options, theta []float64) (*Model, error) {
	if theta == nil {
		theta = make([]float64, p.k*p.d+p.k)
	}
	if theta0 != nil {
		copy(theta, theta0)
	}
	lambda := 1 / (o.C * float64(p.n))
	res, err := minimize(func(x, g []float64) (float64, error) { return p.eval(x, g, lambda) }, theta, o.Tol, o.MaxIter)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	m := &Model{C: o.C, Iterations: res.iterations, Converged: res.converged, Objective: res.f * o.C * float64(p.n)}
	// Back to the features' coordinates: W = V/scale, b = c − W·mean.
	for c := range p.k {
		row := make([]float64, p.d)
		b := theta[p.k*p.d+c]
		for j := range row {
			row[j] = theta[c*p.d+j] / p.scale[j]
			b -= row[j] * p.mean[j]
		}
		m.Coef = append(m.Coef, row)
		m.Intercept = append(m.Intercept, b)
	}
	return m, nil
}

// accuracy returns the fraction of the problem's samples that theta
// classifies right.
func (p *problem) accuracy(theta []float64) (float64, error) {
	s := torch.NewScope()
	defer s.Close()
	logits, err := p.logits(theta)
	if err != nil {
		return 0, err
	}
	pred, err := logits.Argmax(1, false)
	if err != nil {
		return 0, err
	}
	truth, err := p.onehot.Argmax(1, false)
	if err != nil {
		return 0, err
	}
	hits, err := pred.Eq(truth)
	if err == nil {
		hits, err = hits.ToDType(torch.Float64)
	}
	if err == nil {
		hits, err = hits.Mean()
	}
	if err != nil {
		return 0, err
	}
	return hits.Item()
}

// Proba returns the class probabilities (N×K float64, on x's device) of
// features x.
func (m *Model) Proba(x *torch.Tensor) (*torch.Tensor, error) {
	logits, err := m.logits(x)
	if err != nil {
		return nil, err
	}
	return torch.Softmax(logits, 1)
}

func (m *Model) logits(x *torch.Tensor) (*torch.Tensor, error) {
	k, d := len(m.Coef), len(m.Coef[0])
	if x.Dim() != 2 || x.Shape()[1] != int64(d) {
		return nil, fmt.Errorf("probe: features: want N×%d, got shape %v", d, x.Shape())
	}
	flat := make([]float64, 0, k*d)
	for _, row := range m.Coef {
		flat = append(flat, row...)
	}
	w, err := torch.FromSlice(flat, int64(k), int64(d))
	if err == nil {
		w, err = w.ToDevice(x.Device())
	}
	var b, xd *torch.Tensor
	if err == nil {
		b, err = torch.FromSlice(m.Intercept)
	}
	if err == nil {
		b, err = b.ToDevice(x.Device())
	}
	if err == nil {
		xd, err = x.ToDType(torch.Float64)
	}
	if err != nil {
		return nil, err
	}
	return torch.Linear(xd, w, b)
}

// Predict returns the most probable class of each row of x.
func (m *Model) Predict(x *torch.Tensor) ([]int, error) {
	s := torch.NewScope()
	defer s.Close()
	logits, err := m.logits(x)
	if err != nil {
		return nil, err
	}
	am, err := logits.Argmax(1, false)
	if err != nil {
		return nil, err
	}
	v, err := am.Int64s()
	if err != nil {
		return nil, err
	}
	out := make([]int, len(v))
	for i, c := range v {
		out[i] = int(c)
	}
	return out, nil
}

// Accuracy returns the fraction of rows of x whose predicted class is y's.
func (m *Model) Accuracy(x *torch.Tensor, y []int) (float64, error) {
	pred, err := m.Predict(x)
	if err != nil {
		return 0, err
	}
	if len(pred) != len(y) {
		return 0, fmt.Errorf("probe: %d feature rows but %d labels", len(pred), len(y))
	}
	if len(y) == 0 {
		return 0, errors.New("probe: no samples to score")
	}
	hits := 0
	for i, c := range pred {
		if c == y[i] {
			hits++
		}
	}
	return float64(hits) / float64(len(y)), nil
}
