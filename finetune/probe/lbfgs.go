package probe

import (
	"errors"
	"math"
)

// objective returns f(x) and writes its gradient into grad.
type objective func(x, grad []float64) (float64, error)

// lbfgsResult is where minimize stopped.
type lbfgsResult struct {
	f          float64
	iterations int
	// converged reports that the largest gradient component reached the
	// tolerance, or that f stopped decreasing at machine precision.
	converged bool
}

// lbfgs parameters: history length, Wolfe conditions' constants and the
// relative decrease of f below which the minimum counts as reached (as
// scikit-learn's ftol of 64 machine epsilons).
const (
	lbfgsMemory = 10
	wolfeC1     = 1e-4
	wolfeC2     = 0.9
	lbfgsFTol   = 64 * 2.220446049250313e-16
	maxLineIter = 40
)

var errLineSearch = errors.New("line search found no acceptable step")

// minimize minimises f from x (updated in place) with L-BFGS: directions
// from the two-loop recursion over the last lbfgsMemory steps, steps
// satisfying the strong Wolfe conditions (Nocedal and Wright, Numerical
// Optimization, algorithms 7.4, 3.5 and 3.6). It stops when the largest
// gradient component is at most gtol, when f stops decreasing, or after
// maxIter iterations.
func minimize(f objective, x []float64, gtol float64, maxIter int) (lbfgsResult, error) {
	n := len(x)
	g := make([]float64, n)
	fx, err := f(x, g)
	if err != nil {
		return lbfgsResult{}, err
	}
	var ss, ys [][]float64
	var rhos []float64
	d := make([]float64, n)
	alpha := make([]float64, lbfgsMemory)
	xNew, gNew := make([]float64, n), make([]float64, n)
	res := lbfgsResult{f: fx}
	for res.iterations < maxIter {
		if normInf(g) <= gtol {
			res.converged = true
			return res, nil
		}
		// d = -H·g by the two-loop recursion.
		copy(d, g)
		for i := len(ss) - 1; i >= 0; i-- {
			alpha[i] = rhos[i] * dot(ss[i], d)
			axpy(-alpha[i], ys[i], d)
		}
		gamma := 1 / normInf(g) // first step: at most 1 in every coordinate
		if k := len(ss); k > 0 {
			gamma = dot(ss[k-1], ys[k-1]) / dot(ys[k-1], ys[k-1])
		}
		scale(gamma, d)
		for i := range ss {
			beta := rhos[i] * dot(ys[i], d)
			axpy(alpha[i]-beta, ss[i], d)
		}
		scale(-1, d)
		slope := dot(g, d)
		if slope >= 0 { // not a descent direction: restart from steepest descent
			ss, ys, rhos = ss[:0], ys[:0], rhos[:0]
			copy(d, g)
			scale(-1/normInf(g), d)
			slope = dot(g, d)
		}
		fNew, err := lineSearch(f, x, fx, g, d, slope, xNew, gNew)
		if errors.Is(err, errLineSearch) {
			// No step decreases f: at the precision of f, this is the
			// minimum.
			res.converged = true
			return res, nil
		}
		if err != nil {
			return res, err
		}
		res.iterations++
		s, y := make([]float64, n), make([]float64, n)
		for i := range x {
			s[i], y[i] = xNew[i]-x[i], gNew[i]-g[i]
		}
		copy(x, xNew)
		copy(g, gNew)
		decrease := (fx - fNew) / math.Max(math.Max(math.Abs(fx), math.Abs(fNew)), 1)
		fx = fNew
		res.f = fx
		if sy := dot(s, y); sy > 1e-12*dot(y, y) {
			if len(ss) == lbfgsMemory {
				ss, ys, rhos = ss[1:], ys[1:], rhos[1:]
			}
			ss, ys, rhos = append(ss, s), append(ys, y), append(rhos, 1/sy)
		}
		if decrease <= lbfgsFTol {
			res.converged = true
			return res, nil
		}
	}
	res.converged = normInf(g) <= gtol
	return res, nil
}

// lineSearch finds a step a along d from x with the strong Wolfe
// conditions and leaves x + a·d in xNew and its gradient in gNew.
func lineSearch(f objective, x []float64, f0 float64, g0, d []float64, slope0 float64, xNew, gNew []float64) (float64, error) {
	eval := func(a float64) (float64, float64, error) {
		for i := range x {
			xNew[i] = x[i] + a*d[i]
		}
		v, err := f(xNew, gNew)
		return v, dot(gNew, d), err
	}
	prevA, prevF, prevSlope := 0.0, f0, slope0
	a := 1.0
	for i := range maxLineIter {
		fa, slope, err := eval(a)
		if err != nil {
			return 0, err
		}
		if fa > f0+wolfeC1*a*slope0 || (i > 0 && fa >= prevF) || math.IsNaN(fa) {
			return zoom(eval, f0, slope0, prevA, prevF, prevSlope, a, fa, slope)
		}
		if math.Abs(slope) <= -wolfeC2*slope0 {
			return fa, nil
		}
		if slope >= 0 {
			return zoom(eval, f0, slope0, a, fa, slope, prevA, prevF, prevSlope)
		}
		prevA, prevF, prevSlope = a, fa, slope
		a *= 2
	}
	return 0, errLineSearch
}

// zoom narrows [lo, hi] (lo satisfying the sufficient decrease, with the
// lower f) to a step satisfying both strong Wolfe conditions; the point
// left in xNew and gNew is the last one evaluated, the step returned.
func zoom(eval func(float64) (float64, float64, error), f0, slope0, lo, fLo, sLo, hi, fHi, sHi float64) (float64, error) {
	for range maxLineIter {
		a := cubicMin(lo, fLo, sLo, hi, fHi, sHi)
		width := math.Abs(hi - lo)
		if width < 1e-16*math.Max(math.Abs(lo), math.Abs(hi)) {
			break
		}
		// Keep the trial inside the interval, away from its ends.
		if lower, upper := math.Min(lo, hi)+0.1*width, math.Max(lo, hi)-0.1*width; math.IsNaN(a) || a < lower || a > upper {
			a = (lo + hi) / 2
		}
		fa, slope, err := eval(a)
		if err != nil {
			return 0, err
		}
		if fa > f0+wolfeC1*a*slope0 || fa >= fLo || math.IsNaN(fa) {
			hi, fHi, sHi = a, fa, slope
			continue
		}
		if math.Abs(slope) <= -wolfeC2*slope0 {
			return fa, nil
		}
		if slope*(hi-lo) >= 0 {
			hi, fHi, sHi = lo, fLo, sLo
		}
		lo, fLo, sLo = a, fa, slope
	}
	// The interval collapsed: accept lo when it decreases f.
	if lo > 0 && fLo < f0 {
		fa, _, err := eval(lo)
		return fa, err
	}
	return 0, errLineSearch
}

// cubicMin returns the minimiser of the cubic interpolating f and its
// slope at a and b (NaN when it has none).
func cubicMin(a, fa, da, b, fb, db float64) float64 {
	d1 := da + db - 3*(fa-fb)/(a-b)
	disc := d1*d1 - da*db
	if disc < 0 {
		return math.NaN()
	}
	d2 := math.Copysign(math.Sqrt(disc), b-a)
	return b - (b-a)*(db+d2-d1)/(db-da+2*d2)
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

// axpy computes y += a·x.
func axpy(a float64, x, y []float64) {
	for i, v := range x {
		y[i] += a * v
	}
}

func scale(a float64, x []float64) {
	for i := range x {
		x[i] *= a
	}
}

func normInf(x []float64) float64 {
	m := 0.0
	for _, v := range x {
		m = math.Max(m, math.Abs(v))
	}
	return m
}
