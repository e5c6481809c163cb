package torch

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAutocastCPUBFloat16(t *testing.T) {
	x := Must(Randn([]int64{2, 3, 8, 8}))
	w := Must(Randn([]int64{4, 3, 3, 3}))
	a := Must(Randn([]int64{4, 5}))
	b := Must(Randn([]int64{5, 6}))
	lw := Must(Randn([]int64{6, 5}))
	require.NoError(t, lw.SetRequiresGrad(true))
	target := Must(FromSlice([]int64{0, 1, 2, 3}))

	require.False(t, AutocastEnabled(DeviceCPU))
	var loss *Tensor
	err := Autocast(DeviceCPU, BFloat16, func() error {
		require.True(t, AutocastEnabled(DeviceCPU))
		require.False(t, AutocastEnabled(DeviceCUDA), "autocast is per device type")
		y := Must(Conv2d(x, w, nil, Conv2dOptions{}))
		require.Equal(t, BFloat16, y.DType(), "conv2d runs in bfloat16")
		want := Must(Conv2d(Must(x.ToDType(BFloat16)), Must(w.ToDType(BFloat16)), nil, Conv2dOptions{}))
		require.Equal(t, Must(want.Float32s()), Must(y.Float32s()), "autocast casts the inputs, as PyTorch does")
		require.Equal(t, BFloat16, Must(a.Matmul(b)).DType(), "matmul")
		logits := Must(Linear(a, lw, nil))
		require.Equal(t, BFloat16, logits.DType(), "linear")
		require.Equal(t, Float32, Must(a.Relu()).DType(), "relu keeps its input's type")
		loss = Must(CrossEntropy(logits, target, LossOptions{}))
		require.Equal(t, Float32, loss.DType(), "losses run in float32")
		return nil
	})
	require.NoError(t, err)
	require.False(t, AutocastEnabled(DeviceCPU), "Autocast restores the state")
	require.Equal(t, Float32, Must(a.Matmul(b)).DType())

	require.NoError(t, loss.Backward())
	g := Must(lw.Grad())
	require.NotNil(t, g)
	require.Equal(t, Float32, g.DType(), "the float32 parameter gets a float32 gradient")
}

func TestAutocastNestsAndRestores(t *testing.T) {
	a := Must(Randn([]int64{3, 3}))
	boom := errors.New("boom")
	err := Autocast(DeviceCPU, BFloat16, func() error {
		inner := Autocast(DeviceCPU, BFloat16, func() error { return boom })
		require.ErrorIs(t, inner, boom, "f's error comes back unchanged")
		require.True(t, AutocastEnabled(DeviceCPU), "the outer region is still on")
		require.Equal(t, BFloat16, Must(a.Matmul(a)).DType())
		return nil
	})
	require.NoError(t, err)
	require.False(t, AutocastEnabled(DeviceCPU))

	require.Panics(t, func() {
		_ = Autocast(DeviceCPU, BFloat16, func() error { panic("in f") })
	})
	require.False(t, AutocastEnabled(DeviceCPU), "a panic in f restores the state too")
}

func TestAutocastCUDAStateLeavesCPUAlone(t *testing.T) {
	a := Must(Randn([]int64{3, 3}))
	err := Autocast(DeviceCUDA, Float16, func() error {
		require.True(t, AutocastEnabled(DeviceCUDA))
		require.Equal(t, Float32, Must(a.Matmul(a)).DType(), "CUDA autocast does not touch CPU tensors")
		return nil
	})
	require.NoError(t, err)
	require.False(t, AutocastEnabled(DeviceCUDA))
}

func TestAutocastRejectsBadArguments(t *testing.T) {
	called := false
	f := func() error { called = true; return nil }
	err := Autocast(DeviceCPU, Float32, f)
	require.ErrorContains(t, err, "want bfloat16 or float16")
	err = Autocast(DeviceType(9), BFloat16, f)
	require.ErrorContains(t, err, "autocast supports cpu and cuda")
	require.False(t, called)
}
