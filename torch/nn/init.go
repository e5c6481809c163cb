package nn

import (
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
)

// Initialisers follow torch.nn.init, drawing from libtorch's default
// generator in the same order as PyTorch's constructors, so the same
// torch.ManualSeed gives the same initial weights.

// KaimingUniformBound is the bound of torch.nn.init.kaiming_uniform_ with
// leaky_relu slope a, computed with PyTorch's sequence of float operations.
func KaimingUniformBound(a float64, fanIn int64) float64 {
	gain := math.Sqrt(2.0 / (1 + a*a))
	std := gain / math.Sqrt(float64(fanIn))
	return math.Sqrt(3.0) * std
}

// KaimingNormalStd is the standard deviation of kaiming_normal_ with the
// ReLU gain, over fan (fan_in or fan_out).
func KaimingNormalStd(fan int64) float64 {
	return math.Sqrt(2.0) / math.Sqrt(float64(fan))
}

// defaultLinearInit is reset_parameters of nn.Linear and nn.Conv2d:
// kaiming_uniform_(a=√5) for the weight, U(-1/√fan_in, 1/√fan_in) for the
// bias.
func defaultLinearInit(weight, bias *torch.Tensor, fanIn int64) error {
	return torch.NoGrad(func() error {
		b := KaimingUniformBound(math.Sqrt(5), fanIn)
		if err := weight.Uniform_(-b, b, nil); err != nil {
			return err
		}
		if bias == nil {
			return nil
		}
		bb := 0.0
		if fanIn > 0 {
			bb = 1 / math.Sqrt(float64(fanIn))
		}
		return bias.Uniform_(-bb, bb, nil)
	})
}

// TruncNormal_ fills t from a normal distribution of mean and std
// truncated to [a, b], as torch.nn.init.trunc_normal_ (PyTorch 1.13) does
// it, with the same draws: uniform values between the bounds' CDFs mapped
// through the inverse error function, then clamped.
func TruncNormal_(t *torch.Tensor, mean, std, a, b float64) error {
	cdf := func(x float64) float64 { return (1 + math.Erf(x/math.Sqrt(2))) / 2 }
	lo, hi := cdf((a-mean)/std), cdf((b-mean)/std)
	return torch.NoGrad(func() error {
		if err := t.Uniform_(2*lo-1, 2*hi-1, nil); err != nil {
			return err
		}
		if _, err := torch.CallOp("aten::erfinv_", "", t); err != nil {
			return err
		}
		if err := t.MulScalar_(std * math.Sqrt(2)); err != nil {
			return err
		}
		if err := t.AddScalar_(mean); err != nil {
			return err
		}
		_, err := torch.CallOp("aten::clamp_", "", t, a, b)
		return err
	})
}

// XavierUniform_ fills t (fanOut, fanIn, …) as torch.nn.init.xavier_uniform_
// with gain 1: U(-a, a) with a = √3·√(2/(fanIn+fanOut)).
func XavierUniform_(t *torch.Tensor) error {
	shape := t.Shape()
	if len(shape) < 2 {
		return fmt.Errorf("nn: xavier_uniform_ needs at least 2 dimensions, got %v", shape)
	}
	field := int64(1)
	for _, d := range shape[2:] {
		field *= d
	}
	fanIn, fanOut := shape[1]*field, shape[0]*field
	std := math.Sqrt(2.0 / float64(fanIn+fanOut))
	a := math.Sqrt(3.0) * std
	return torch.NoGrad(func() error { return t.Uniform_(-a, a, nil) })
}
