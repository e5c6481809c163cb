package torch

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// The TestCUDA tests run where libtorch sees a GPU (scripts/gpu-check.sh
// runs them) and skip elsewhere.

func requireCUDA(t *testing.T) {
	t.Helper()
	if !CUDAIsAvailable() {
		t.Skip("no CUDA device")
	}
}

// requireClose checks that got matches want to within tol times want's
// largest magnitude.
func requireClose(t *testing.T, want, got *Tensor, tol float64, what string) {
	t.Helper()
	w, g := Must(want.Float64s()), Must(got.Float64s())
	require.Len(t, g, len(w), what)
	scale, worst := 0.0, 0.0
	for i := range w {
		scale = math.Max(scale, math.Abs(w[i]))
		worst = math.Max(worst, math.Abs(w[i]-g[i]))
	}
	require.LessOrEqual(t, worst, tol*scale, "%s: largest difference %g, scale %g", what, worst, scale)
}

func TestCUDABuildInfo(t *testing.T) {
	requireCUDA(t)
	b := Must(BuildInfo())
	t.Logf("%v", b)
	require.True(t, b.CUDA)
	require.NotEmpty(t, b.CUDAVersion)
	require.Positive(t, b.DeviceCount)
}

func TestCUDASelectDevice(t *testing.T) {
	requireCUDA(t)
	d, msg, err := SelectDevice("auto")
	require.NoError(t, err)
	require.Equal(t, CUDA(0), d)
	t.Log(msg)
	d, _, err = SelectDevice("cuda")
	require.NoError(t, err)
	require.Equal(t, CUDA(0), d)
	n := CUDADeviceCount()
	d, _, err = SelectDevice(CUDA(n - 1).String())
	require.NoError(t, err)
	require.Equal(t, CUDA(n-1), d)
	_, _, err = SelectDevice(CUDA(n).String())
	require.ErrorContains(t, err, CUDA(n).String())
	require.ErrorContains(t, err, "CUDA device(s) visible")
}

func TestCUDARoundTrip(t *testing.T) {
	requireCUDA(t)
	x := Must(Randn([]int64{3, 4}))
	y := Must(x.ToDevice(CUDA(0)))
	require.Equal(t, CUDA(0), y.Device())
	require.Equal(t, Must(x.Float32s()), Must(y.Float32s()), "reading a CUDA tensor copies it back")
	back := Must(y.ToDevice(CPU))
	require.Equal(t, DeviceCPU, back.Device().Type)
	require.Equal(t, Must(x.Float32s()), Must(back.Float32s()))
	z := Must(Zeros([]int64{2}, CUDA(0), Float64))
	require.Equal(t, CUDA(0), z.Device())
	require.Equal(t, Float64, z.DType())
}

func TestCUDAPinnedCopy(t *testing.T) {
	requireCUDA(t)
	x := Must(Randn([]int64{64, 3, 32, 32}))
	p := Must(x.PinMemory())
	require.True(t, Must(p.IsPinned()))
	require.False(t, Must(x.IsPinned()))
	y := Must(p.ToNonBlocking(CUDA(0), Float32))
	require.Equal(t, CUDA(0), y.Device())
	require.NoError(t, CUDASynchronize(0))
	require.Equal(t, Must(x.Float32s()), Must(y.Float32s()))
	back := Must(y.ToNonBlocking(CPU, Float32))
	require.NoError(t, CUDASynchronize(-1))
	require.Equal(t, Must(x.Float32s()), Must(back.Float32s()))
}

func TestCUDAConvMatchesCPU(t *testing.T) {
	requireCUDA(t)
	defer SetCuDNNBenchmark(CuDNNBenchmark())
	for _, bench := range []bool{false, true} {
		SetCuDNNBenchmark(bench)
		x := Must(Randn([]int64{4, 8, 16, 16}))
		w := Must(Randn([]int64{16, 8, 3, 3}))
		b := Must(Randn([]int64{16}))
		grads := func(dev Device, format MemoryFormat) (y, gx, gw *Tensor) {
			// Detach makes fresh leaves: To returns x itself on the CPU.
			xd := Must(Must(Must(x.ToDevice(dev)).ContiguousAs(format)).Detach())
			wd := Must(Must(Must(w.ToDevice(dev)).ContiguousAs(format)).Detach())
			bd := Must(Must(b.ToDevice(dev)).Detach())
			for _, p := range []*Tensor{xd, wd, bd} {
				require.NoError(t, p.SetRequiresGrad(true))
			}
			y = Must(Conv2d(xd, wd, bd, Conv2dOptions{Padding: [2]int64{1, 1}, Stride: [2]int64{2, 2}}))
			require.NoError(t, Must(Must(y.Mul(y)).Sum()).Backward())
			return y, Must(xd.Grad()), Must(wd.Grad())
		}
		y0, gx0, gw0 := grads(CPU, ContiguousFormat)
		for _, format := range []MemoryFormat{ContiguousFormat, ChannelsLast} {
			y, gx, gw := grads(CUDA(0), format)
			require.Equal(t, CUDA(0), y.Device())
			// cuDNN may use TF32 for float32 convolutions, as PyTorch does
			// by default: about three decimal digits.
			requireClose(t, y0, y, 5e-3, "forward")
			requireClose(t, gx0, gx, 5e-3, "input gradient")
			requireClose(t, gw0, gw, 5e-3, "weight gradient")
		}
	}
}

func TestCUDAAutocast(t *testing.T) {
	requireCUDA(t)
	x := Must(Randn([]int64{8, 16, 14, 14}, CUDA(0)))
	w := Must(Randn([]int64{32, 16, 3, 3}, CUDA(0)))
	lw := Must(Randn([]int64{10, 32}, CUDA(0)))
	require.NoError(t, lw.SetRequiresGrad(true))
	target := Must(Randint(0, 10, []int64{8}, CUDA(0)))
	for _, dt := range []DType{BFloat16, Float16} {
		var loss, y *Tensor
		err := Autocast(DeviceCUDA, dt, func() error {
			require.True(t, AutocastEnabled(DeviceCUDA))
			y = Must(Conv2d(x, w, nil, Conv2dOptions{Padding: [2]int64{1, 1}}))
			require.Equal(t, dt, y.DType(), "conv2d")
			pooled := Must(Must(AdaptiveAvgPool2d(y, 1, 1)).Flatten(1, -1))
			logits := Must(Linear(pooled, lw, nil))
			require.Equal(t, dt, logits.DType(), "linear")
			loss = Must(CrossEntropy(logits, target, LossOptions{}))
			require.Equal(t, Float32, loss.DType(), "cross entropy runs in float32")
			return nil
		})
		require.NoError(t, err)
		require.False(t, AutocastEnabled(DeviceCUDA))
		want := Must(Conv2d(x, w, nil, Conv2dOptions{Padding: [2]int64{1, 1}}))
		requireClose(t, want, y, 2e-2, dt.String()+" conv2d against float32")
		require.NoError(t, lw.ClearGrad())
		require.NoError(t, loss.Backward())
		g := Must(lw.Grad())
		require.Equal(t, Float32, g.DType(), "the float32 parameter gets a float32 gradient")
		require.Equal(t, CUDA(0), g.Device())
	}
}
