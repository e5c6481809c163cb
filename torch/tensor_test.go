package torch

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConvChannelMismatchIsAnError(t *testing.T) {
	x := Must(Randn([]int64{1, 2, 8, 8}))
	w := Must(Randn([]int64{4, 3, 3, 3}))
	_, err := Conv2d(x, w, nil, Conv2dOptions{})
	require.Error(t, err)
	var te *Error
	require.ErrorAs(t, err, &te)
	require.Contains(t, err.Error(), "expected input[1, 2, 8, 8] to have 3 channels, but got 2 channels instead")
	require.NotContains(t, err.Error(), "frame #", "libtorch's backtrace leaks into the message")
}

func TestBadCallsAreErrors(t *testing.T) {
	x := Must(Ones([]int64{2, 3}))
	cases := []struct {
		name string
		call func() error
		msg  string
	}{
		{"view of wrong size", func() error { _, err := x.View(4, 4); return err }, "invalid for input of size 6"},
		{"matmul shapes", func() error { _, err := x.Matmul(x); return err }, "cannot be multiplied"},
		{"wrong argument type", func() error {
			_, err := CallOp("aten::relu", "", 3.5)
			return err
		}, "expects Tensor"},
		{"unknown operator", func() error { _, err := CallOp("aten::no_such_op", ""); return err }, "not in this libtorch"},
		{"too many arguments", func() error { _, err := CallOp("aten::relu", "", x, x); return err }, "2 arguments given"},
		{"missing argument", func() error { _, err := CallOp("aten::add", "Tensor", x); return err }, "'other' is required"},
		{"data size", func() error { _, err := FromSlice([]float32{1, 2, 3}, 2, 2); return err }, "shape needs 16"},
		{"nil tensor", func() error { _, err := x.Add(nil); return err }, "nil tensor"},
		{"item of many", func() error { _, err := x.Item(); return err }, "6 elements"},
		{"bad device", func() error { _, err := ParseDevice("gpu"); return err }, "want cpu, cuda or cuda:N"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			require.Error(t, err)
			require.Contains(t, err.Error(), c.msg)
		})
	}
}

func TestDTypesRoundTrip(t *testing.T) {
	x := Must(FromSlice([]float64{1.5, -2.25, 3}))
	for _, dt := range []DType{Float32, Float64, Float16, BFloat16, Int64, Int32, Uint8, Bool, Int8, Int16} {
		t.Run(dt.String(), func(t *testing.T) {
			y := Must(x.ToDType(dt))
			require.Equal(t, dt, y.DType())
			raw := Must(y.Bytes())
			require.Len(t, raw, 3*dt.Size())
			back := Must(FromBytes(raw, dt, 3))
			require.Equal(t, Must(y.Float64s()), Must(back.Float64s()))
			parsed, err := ParseDType(dt.String())
			require.NoError(t, err)
			require.Equal(t, dt, parsed)
		})
	}
	require.Equal(t, []int64{1, -2, 3}, Must(Data[int64](x)))
	require.Equal(t, []bool{true, true, true}, Must(Data[bool](x)))
}

func TestDevicesAndLayout(t *testing.T) {
	d, err := ParseDevice("cuda:1")
	require.NoError(t, err)
	require.Equal(t, CUDA(1), d)
	require.Equal(t, "cuda:1", d.String())
	require.Equal(t, "cpu", CPU.String())
	require.Equal(t, DeviceCPU, Must(Ones([]int64{1})).Device().Type)
	if !CUDAIsAvailable() {
		require.Equal(t, 0, CUDADeviceCount())
		_, err := Must(Ones([]int64{1})).ToDevice(CUDA(0))
		require.Error(t, err, "moving to CUDA without CUDA must fail cleanly")
	}
	x := Must(Randn([]int64{2, 3, 4, 5}))
	cl := Must(x.ContiguousAs(ChannelsLast))
	ok, err := cl.IsContiguous(ChannelsLast)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = cl.IsContiguous(ContiguousFormat)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, Must(x.Float32s()), Must(cl.Float32s()), "layout changes no value")
}

func TestGeneratorsAreReproducible(t *testing.T) {
	g1 := Must(NewGenerator(42))
	g2 := Must(NewGenerator(42))
	a := Must(Randn([]int64{5}, g1))
	b := Must(Randn([]int64{5}, g2))
	require.Equal(t, Must(a.Float32s()), Must(b.Float32s()))
	state := Must(g1.State())
	c := Must(Rand([]int64{3}, g1))
	require.NoError(t, g1.SetState(state))
	d := Must(Rand([]int64{3}, g1))
	require.Equal(t, Must(c.Float32s()), Must(d.Float32s()))
	perm := Must(Must(Randperm(10, g2)).Int64s())
	require.ElementsMatch(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, perm)
	r := Must(Must(Randint(3, 7, []int64{100}, g2)).Int64s())
	for _, v := range r {
		require.True(t, v >= 3 && v < 7)
	}
	require.NoError(t, g1.Seed(42))
	e := Must(Randn([]int64{5}, g1))
	require.Equal(t, Must(a.Float32s()), Must(e.Float32s()))
	g1.Free()
	g1.Free()
	_, err := Randn([]int64{1}, g1)
	require.Error(t, err)
}

func TestManualSeedMatchesPyTorch(t *testing.T) {
	ManualSeed(0)
	got := Must(Must(Randn([]int64{4})).Float64s())
	// torch.manual_seed(0); torch.randn(4) in PyTorch 1.13.
	want := []float64{1.5409960746765137, -0.293428897857666, -2.1787893772125244, 0.5684312582015991}
	require.InDeltaSlice(t, want, got, 1e-7)
}

func TestNumThreads(t *testing.T) {
	prev := NumThreads()
	defer SetNumThreads(prev)
	SetNumThreads(2)
	require.Equal(t, 2, NumThreads())
	done := make(chan int)
	go func() {
		// A fresh OS thread starts with OpenMP's default count.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_ = Must(Must(Ones([]int64{4})).Sum())
		done <- NumThreads()
	}()
	require.Equal(t, 2, <-done, "the thread count must hold on every OS thread")
}

func TestShapeHelpers(t *testing.T) {
	x := Must(Zeros([]int64{2, 3, 4}))
	require.Equal(t, 3, x.Dim())
	require.Equal(t, int64(24), x.Numel())
	n, err := x.Size(-1)
	require.NoError(t, err)
	require.Equal(t, int64(4), n)
	_, err = x.Size(3)
	require.Error(t, err)
	parts := Must(x.Chunk(2, 2))
	require.Len(t, parts, 2)
	require.Equal(t, []int64{2, 3, 2}, parts[1].Shape())
	many := Must(Must(Arange(0, 20, 1)).Split(1, 0))
	require.Len(t, many, 20, "more results than the call's fixed result slots")
	require.Equal(t, 19.0, Must(many[19].Item()))
}

// TestBatchNormStats compares BatchNormStats with the mean and biased
// variance over N, H and W computed in float64, in both layouts, with a
// constant channel.
func TestBatchNormStats(t *testing.T) {
	s := NewScope()
	defer s.Close()
	ManualSeed(5)
	x := Must(Must(Randn([]int64{3, 4, 5, 6})).MulScalar(3))
	x = Must(x.AddScalar(2))
	require.NoError(t, Must(x.Narrow(1, 3, 1)).Fill_(7))
	v := Must(x.Float64s())
	const n, c, hw = 3, 4, 30
	for _, format := range []MemoryFormat{ContiguousFormat, ChannelsLast} {
		mean, variance, err := BatchNormStats(Must(x.ContiguousAs(format)))
		require.NoError(t, err)
		gotMean, gotVar := Must(mean.Float64s()), Must(variance.Float64s())
		for ch := range c {
			sum, sq := 0.0, 0.0
			for i := range n {
				for _, e := range v[(i*c+ch)*hw : (i*c+ch+1)*hw] {
					sum += e
				}
			}
			m := sum / (n * hw)
			for i := range n {
				for _, e := range v[(i*c+ch)*hw : (i*c+ch+1)*hw] {
					sq += (e - m) * (e - m)
				}
			}
			require.InDelta(t, m, gotMean[ch], 1e-5, "format %v, channel %d", format, ch)
			if ch == 3 {
				require.Zero(t, gotVar[ch], "a constant channel")
				continue
			}
			require.InEpsilon(t, sq/(n*hw), gotVar[ch], 1e-6, "format %v, channel %d", format, ch)
		}
	}
}
