package finetune

import (
	"math"
	"math/rand/v2"

	"github.com/finetune-go/finetune/internal/seed"
	"github.com/finetune-go/finetune/torch"
)

// mixedBatch is a batch after mixup or cutmix: the inputs to use (nil to
// use the batch's own), the second labels and the weight of the first.
type mixedBatch struct {
	x      *torch.Tensor
	other  *torch.Tensor
	lambda float64
}

// mixBatch applies mixup or cutmix (chosen at random when both are on) to
// a training batch, with draws from the step's generator.
func (lp *loop) mixBatch(b trainBatch, y *torch.Tensor) (mixedBatch, error) {
	a := lp.cfg.Augment
	if a.Mixup == 0 && a.Cutmix == 0 || b.n < 2 {
		return mixedBatch{x: b.x}, nil
	}
	r := rand.New(rand.NewPCG(lp.cfg.Seed, seed.Mix(uint64(lp.state.Stage), uint64(lp.state.Epoch), uint64(lp.state.StepInEpoch))))
	useCutmix := a.Cutmix > 0 && (a.Mixup == 0 || r.IntN(2) == 0) && b.x != nil
	alpha := a.Mixup
	if useCutmix {
		alpha = a.Cutmix
	}
	lam := betaSample(r, alpha)
	perm := make([]int64, b.n)
	for i, p := range r.Perm(b.n) {
		perm[i] = int64(p)
	}
	pt, err := torch.FromSlice(perm)
	if err != nil {
		return mixedBatch{}, err
	}
	other, err := y.IndexSelect(0, pt)
	if err != nil {
		return mixedBatch{}, err
	}
	src := b.x
	if src == nil {
		src = b.feats
	}
	shuffled, err := src.IndexSelect(0, pt)
	if err != nil {
		return mixedBatch{}, err
	}
	if !useCutmix {
		x, err := src.MulScalar(lam)
		if err != nil {
			return mixedBatch{}, err
		}
		if x, err = x.AddScaled(shuffled, 1-lam); err != nil {
			return mixedBatch{}, err
		}
		return mixedBatch{x: x, other: other, lambda: lam}, nil
	}
	shape := src.Shape()
	h, w := shape[2], shape[3]
	cut := math.Sqrt(1 - lam)
	ch, cw := int64(float64(h)*cut), int64(float64(w)*cut)
	cy, cx := r.Int64N(h), r.Int64N(w)
	y0, y1 := max(cy-ch/2, 0), min(cy+ch/2, h)
	x0, x1 := max(cx-cw/2, 0), min(cx+cw/2, w)
	x, err := src.Clone()
	if err != nil {
		return mixedBatch{}, err
	}
	if y1 > y0 && x1 > x0 {
		dst, err := x.Narrow(2, y0, y1-y0)
		if err == nil {
			dst, err = dst.Narrow(3, x0, x1-x0)
		}
		var patch *torch.Tensor
		if err == nil {
			patch, err = shuffled.Narrow(2, y0, y1-y0)
		}
		if err == nil {
			patch, err = patch.Narrow(3, x0, x1-x0)
		}
		if err == nil {
			err = dst.Copy_(patch)
		}
		if err != nil {
			return mixedBatch{}, err
		}
	}
	// The label weight is the area actually kept.
	lam = 1 - float64((y1-y0)*(x1-x0))/float64(h*w)
	return mixedBatch{x: x, other: other, lambda: lam}, nil
}

// betaSample draws from Beta(a, a) as the ratio of two gamma draws.
func betaSample(r *rand.Rand, a float64) float64 {
	x, y := gammaSample(r, a), gammaSample(r, a)
	return x / (x + y)
}

// gammaSample draws from Gamma(a, 1) by Marsaglia and Tsang's method.
func gammaSample(r *rand.Rand, a float64) float64 {
	if a < 1 {
		return gammaSample(r, a+1) * math.Pow(r.Float64(), 1/a)
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
