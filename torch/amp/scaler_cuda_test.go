package amp_test

import (
	"math"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/amp"
	"github.com/finetune-go/finetune/torch/optim"
	"github.com/stretchr/testify/require"
)

// The TestCUDA tests run where libtorch sees a GPU (scripts/gpu-check.sh
// runs them) and skip elsewhere.

// TestCUDAUnscaleMatchesCPU: ATen's fused unscale on CUDA and the ordinary
// operators used elsewhere give the same gradients and the same verdict.
func TestCUDAUnscaleMatchesCPU(t *testing.T) {
	if !torch.CUDAIsAvailable() {
		t.Skip("no CUDA device")
	}
	inf := float32(math.Inf(1))
	for _, g := range [][]float32{
		{65536, -3 * 65536, 0.1 * 65536, 1e-30},
		{65536, inf, 1, 2},
		{float32(math.NaN()), 1, 2, 3},
	} {
		var results [2][]float32
		var stepped [2]bool
		for i, dev := range []torch.Device{torch.CPU, torch.CUDA(0)} {
			s := must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{}))
			p := param(t, []float32{1, 2, 3, 4}, g, dev)
			q := param(t, []float32{5}, []float32{65536}, dev)
			opt := sgd(t, p, q)
			require.NoError(t, s.Unscale(opt))
			results[i] = append(grad(t, p), grad(t, q)...)
			stepped[i] = must[bool](t)(s.Step(opt))
			require.NoError(t, s.Update())
		}
		require.Equal(t, stepped[0], stepped[1], "%v", g)
		if stepped[0] {
			require.Equal(t, results[0], results[1], "%v", g)
		}
	}
}

// TestCUDAFloat16Training trains a small network with float16 autocast
// and loss scaling, as finetune does with amp: fp16.
func TestCUDAFloat16Training(t *testing.T) {
	if !torch.CUDAIsAvailable() {
		t.Skip("no CUDA device")
	}
	dev := torch.CUDA(0)
	torch.ManualSeed(2)
	x := must[*torch.Tensor](t)(torch.Randn([]int64{32, 3, 16, 16}, dev))
	y := must[*torch.Tensor](t)(torch.Randint(0, 4, []int64{32}, dev))
	w := must[*torch.Tensor](t)(torch.Randn([]int64{8, 3, 3, 3}, dev))
	fc := must[*torch.Tensor](t)(torch.Randn([]int64{4, 8}, dev))
	for _, p := range []*torch.Tensor{w, fc} {
		require.NoError(t, p.MulScalar_(0.1))
		require.NoError(t, p.SetRequiresGrad(true))
	}
	opt := must[*optim.SGD](t)(optim.NewSGD(optim.ParamGroup{Params: []*torch.Tensor{w, fc}, LR: 0.1, Momentum: 0.9}))
	s := must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{}))
	w0 := floats(t, w)
	var last float64
	steps := 0
	for range 20 {
		require.NoError(t, torch.WithScope(func() error {
			var loss *torch.Tensor
			require.NoError(t, torch.Autocast(torch.DeviceCUDA, torch.Float16, func() error {
				h := must[*torch.Tensor](t)(torch.Conv2d(x, w, nil, torch.Conv2dOptions{Padding: [2]int64{1, 1}}))
				require.Equal(t, torch.Float16, h.DType())
				h = must[*torch.Tensor](t)(must[*torch.Tensor](t)(torch.AdaptiveAvgPool2d(must[*torch.Tensor](t)(h.Relu()), 1, 1)).Flatten(1, -1))
				loss = must[*torch.Tensor](t)(torch.CrossEntropy(must[*torch.Tensor](t)(torch.Linear(h, fc, nil)), y, torch.LossOptions{}))
				return nil
			}))
			last = must[float64](t)(loss.Item())
			require.NoError(t, must[*torch.Tensor](t)(s.Scale(loss)).Backward())
			require.Equal(t, torch.Float32, must[*torch.Tensor](t)(w.Grad()).DType())
			if must[bool](t)(s.Step(opt)) {
				steps++
			}
			require.NoError(t, s.Update())
			return opt.ZeroGrad()
		}))
	}
	t.Logf("%d of 20 steps taken, last loss %.4f, scale %v", steps, last, s.ScaleFactor())
	require.False(t, math.IsNaN(last) || math.IsInf(last, 0), "the float32 loss stays finite")
	require.GreaterOrEqual(t, steps, 10, "overflows are rare: each halves the scale")
	require.NotEqual(t, w0, floats(t, w), "the weights train")
}
