package amp_test

import (
	"math"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/amp"
	"github.com/finetune-go/finetune/torch/optim"
	"github.com/stretchr/testify/require"
)

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

// param returns a parameter with values v and gradient g.
func param(t *testing.T, v, g []float32, dev torch.Device) *torch.Tensor {
	p := must[*torch.Tensor](t)(must[*torch.Tensor](t)(torch.FromSlice(v)).ToDevice(dev))
	require.NoError(t, p.SetRequiresGrad(true))
	require.NoError(t, p.SetGrad(must[*torch.Tensor](t)(must[*torch.Tensor](t)(torch.FromSlice(g)).ToDevice(dev))))
	return p
}

func floats(t *testing.T, x *torch.Tensor) []float32 { return must[[]float32](t)(x.Float32s()) }

func grad(t *testing.T, p *torch.Tensor) []float32 {
	return floats(t, must[*torch.Tensor](t)(p.Grad()))
}

func sgd(t *testing.T, params ...*torch.Tensor) *optim.SGD {
	return must[*optim.SGD](t)(optim.NewSGD(optim.ParamGroup{Params: params, LR: 0.5}))
}

func TestScaleMultipliesLoss(t *testing.T) {
	s := must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{}))
	require.Equal(t, 65536.0, s.ScaleFactor())
	require.Equal(t, amp.ScalerConfig{InitScale: 65536, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2000}, s.Config())
	for _, dt := range []torch.DType{torch.Float32, torch.Float16} {
		loss := must[*torch.Tensor](t)(must[*torch.Tensor](t)(torch.Scalar(2.5)).ToDType(dt))
		scaled := must[*torch.Tensor](t)(s.Scale(loss))
		require.Equal(t, torch.Float32, scaled.DType(), "a float32 factor of shape [1] promotes, as in PyTorch")
		require.Equal(t, []int64{1}, scaled.Shape())
		require.Equal(t, []float32{2.5 * 65536}, floats(t, scaled))
	}
}

func TestStepUnscalesGradients(t *testing.T) {
	s := must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{}))
	p := param(t, []float32{1, 2, 3}, []float32{0.25 * 65536, -3 * 65536, 0.1 * 65536}, torch.CPU)
	opt := sgd(t, p)
	require.NoError(t, s.Unscale(opt))
	require.Equal(t, []float32{0.25, -3, float32(float32(0.1*65536) * float32(1.0/65536))}, grad(t, p), "Unscale divides in place")
	stepped := must[bool](t)(s.Step(opt))
	require.True(t, stepped)
	require.Equal(t, []float32{1 - 0.5*0.25, 2 + 0.5*3, 3 - 0.5*grad(t, p)[2]}, floats(t, p))
	require.NoError(t, s.Update())
	require.Equal(t, amp.ScalerState{Scale: 65536, GrowthTracker: 1}, s.State())
}

func TestStepSkipsNonFiniteGradients(t *testing.T) {
	for _, bad := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
		s := must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{}))
		good := param(t, []float32{1, 2}, []float32{65536, 65536}, torch.CPU)
		p := param(t, []float32{1, 2}, []float32{65536, bad}, torch.CPU)
		opt := sgd(t, good, p)
		stepped := must[bool](t)(s.Step(opt))
		require.False(t, stepped, "%v in a gradient skips the step", bad)
		require.Equal(t, []float32{1, 2}, floats(t, good), "no parameter moves")
		require.Equal(t, []float32{1, 2}, floats(t, p))
		require.NoError(t, s.Update())
		require.Equal(t, amp.ScalerState{Scale: 32768, GrowthTracker: 0}, s.State())
	}
}

// step runs one Step and Update with finite gradients, or non-finite ones
// when bad.
func step(t *testing.T, s *amp.GradScaler, bad bool) {
	g := float32(1)
	if bad {
		g = float32(math.Inf(1))
	}
	p := param(t, []float32{0}, []float32{g}, torch.CPU)
	stepped := must[bool](t)(s.Step(sgd(t, p)))
	require.Equal(t, !bad, stepped)
	require.NoError(t, s.Update())
}

// TestUpdateRule follows torch.cuda.amp.GradScaler's documented rule:
// back off after a skipped step, grow after GrowthInterval good steps in a
// row, and count from zero again after either.
func TestUpdateRule(t *testing.T) {
	s := must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{InitScale: 1024, GrowthInterval: 3}))
	for i, c := range []struct {
		bad     bool
		scale   float64
		tracker int
	}{
		{false, 1024, 1}, {false, 1024, 2}, {false, 2048, 0}, {false, 2048, 1},
		{true, 1024, 0}, {false, 1024, 1}, {true, 512, 0}, {true, 256, 0},
		{false, 256, 1}, {false, 256, 2}, {false, 512, 0},
	} {
		step(t, s, c.bad)
		require.Equal(t, amp.ScalerState{Scale: c.scale, GrowthTracker: c.tracker}, s.State(), "after step %d", i)
	}
}

func TestUpdateRoundsAsFloat32(t *testing.T) {
	s := must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{BackoffFactor: 0.3, GrowthFactor: 1.7, GrowthInterval: 1}))
	step(t, s, true)
	want := float32(65536 * 0.3)
	require.Equal(t, float64(want), s.ScaleFactor(), "the scale is a float32")
	step(t, s, false)
	want = float32(float64(want) * 1.7)
	require.Equal(t, float64(want), s.ScaleFactor())

	s = must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{InitScale: math.MaxFloat32, GrowthInterval: 1}))
	step(t, s, false)
	require.Equal(t, amp.ScalerState{Scale: math.MaxFloat32, GrowthTracker: 0}, s.State(), "growth that overflows float32 is dropped")
}

// TestScaledTrainingEqualsUnscaled: with a power-of-two scale the scaled
// gradients unscale exactly, so training matches plain training bit for
// bit.
func TestScaledTrainingEqualsUnscaled(t *testing.T) {
	torch.ManualSeed(1)
	x := must[*torch.Tensor](t)(torch.Randn([]int64{8, 5}))
	y := must[*torch.Tensor](t)(torch.Randn([]int64{8, 3}))
	w0 := must[*torch.Tensor](t)(torch.Randn([]int64{3, 5}))
	train := func(s *amp.GradScaler) []float32 {
		w := must[*torch.Tensor](t)(w0.Clone())
		require.NoError(t, w.SetRequiresGrad(true))
		opt := must[*optim.SGD](t)(optim.NewSGD(optim.ParamGroup{Params: []*torch.Tensor{w}, LR: 0.1, Momentum: 0.9}))
		for range 5 {
			require.NoError(t, torch.WithScope(func() error {
				loss := must[*torch.Tensor](t)(torch.MSELoss(must[*torch.Tensor](t)(torch.Linear(x, w, nil)), y, torch.ReduceMean))
				if s == nil {
					require.NoError(t, loss.Backward())
					require.NoError(t, opt.Step())
				} else {
					require.NoError(t, must[*torch.Tensor](t)(s.Scale(loss)).Backward())
					require.True(t, must[bool](t)(s.Step(opt)))
					require.NoError(t, s.Update())
				}
				return opt.ZeroGrad()
			}))
		}
		return floats(t, w)
	}
	s := must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{GrowthInterval: 2}))
	require.Equal(t, train(nil), train(s))
	require.Equal(t, amp.ScalerState{Scale: 65536 * 4, GrowthTracker: 1}, s.State())
}

func TestScalerMisuse(t *testing.T) {
	s := must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{}))
	require.ErrorContains(t, s.Update(), "Update without a Step")
	noGrad := must[*torch.Tensor](t)(torch.Zeros([]int64{2}))
	require.NoError(t, noGrad.SetRequiresGrad(true))
	_, err := s.Step(sgd(t, noGrad))
	require.ErrorContains(t, err, "no parameter of the optimizer has a gradient")

	s = must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{}))
	opt := sgd(t, param(t, []float32{1}, []float32{1}, torch.CPU))
	require.NoError(t, s.Unscale(opt))
	require.ErrorContains(t, s.Unscale(opt), "already been called")
	must[bool](t)(s.Step(opt))
	_, err = s.Step(opt)
	require.ErrorContains(t, err, "Step has already been called")
	require.ErrorContains(t, s.Unscale(opt), "after Step")
	require.NoError(t, s.Update())
	must[bool](t)(s.Step(opt))

	half := param(t, []float32{1}, []float32{1}, torch.CPU)
	require.NoError(t, half.SetData(must[*torch.Tensor](t)(half.ToDType(torch.Float16))))
	require.NoError(t, half.SetGrad(must[*torch.Tensor](t)(must[*torch.Tensor](t)(half.Grad()).ToDType(torch.Float16))))
	require.ErrorContains(t, s.Unscale(sgd(t, half)), "float16 gradients")
}

func TestScalerConfigAndState(t *testing.T) {
	for _, c := range []struct {
		cfg amp.ScalerConfig
		msg string
	}{
		{amp.ScalerConfig{InitScale: -1}, "InitScale"},
		{amp.ScalerConfig{InitScale: 1e39}, "InitScale"},
		{amp.ScalerConfig{GrowthFactor: 0.5}, "GrowthFactor"},
		{amp.ScalerConfig{BackoffFactor: 1}, "BackoffFactor"},
		{amp.ScalerConfig{GrowthInterval: -1}, "GrowthInterval"},
	} {
		_, err := amp.NewGradScaler(c.cfg)
		require.ErrorContains(t, err, c.msg)
	}
	s := must[*amp.GradScaler](t)(amp.NewGradScaler(amp.ScalerConfig{GrowthInterval: 10}))
	require.NoError(t, s.LoadState(amp.ScalerState{Scale: 512, GrowthTracker: 7}))
	require.Equal(t, amp.ScalerState{Scale: 512, GrowthTracker: 7}, s.State())
	require.Error(t, s.LoadState(amp.ScalerState{Scale: 0}))
	require.Error(t, s.LoadState(amp.ScalerState{Scale: 1, GrowthTracker: 10}))
}
