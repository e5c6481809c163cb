package torch

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuildInfo(t *testing.T) {
	b, err := BuildInfo()
	require.NoError(t, err)
	t.Logf("%v", b)
	require.True(t, strings.HasPrefix(Version(), b.Version), "Version() %q and BuildInfo %q disagree", Version(), b.Version)
	require.Equal(t, CUDAIsAvailable(), b.CUDAAvailable)
	require.Equal(t, CUDADeviceCount(), b.DeviceCount)
	if !b.CUDA {
		require.Empty(t, b.CUDAVersion)
		require.Empty(t, b.CuDNNVersion)
		require.Equal(t, "libtorch "+b.Version+" (cpu)", b.String())
	} else {
		require.Regexp(t, `^\d+\.\d+$`, b.CUDAVersion)
	}
}

func TestBuildString(t *testing.T) {
	b := Build{Version: "2.5.1", CUDA: true, CUDAVersion: "12.4", CuDNNVersion: "9.1.0", CUDAAvailable: true, DeviceCount: 1}
	require.Equal(t, "libtorch 2.5.1 (CUDA 12.4, cuDNN 9.1.0, 1 GPU)", b.String())
	b.DeviceCount = 8
	require.Equal(t, "libtorch 2.5.1 (CUDA 12.4, cuDNN 9.1.0, 8 GPUs)", b.String())
	b.CUDAAvailable, b.DeviceCount, b.CuDNNVersion = false, 0, ""
	require.Equal(t, "libtorch 2.5.1 (CUDA 12.4, no GPU visible)", b.String())
}

func TestSelectDeviceWithoutCUDA(t *testing.T) {
	if CUDAIsAvailable() {
		t.Skip("CUDA is available; TestCUDASelectDevice covers this libtorch")
	}
	b := Must(BuildInfo())
	for _, spec := range []string{"auto", ""} {
		d, msg, err := SelectDevice(spec)
		require.NoError(t, err)
		require.Equal(t, CPU, d)
		if !b.CUDA {
			require.Equal(t, "CUDA not available (libtorch "+b.Version+" cpu): using cpu", msg)
		}
		require.Contains(t, msg, "CUDA not available")
	}
	d, msg, err := SelectDevice("cpu")
	require.NoError(t, err)
	require.Equal(t, CPU, d)
	require.Equal(t, "using cpu", msg)
	for _, spec := range []string{"cuda", "cuda:0", "cuda:3"} {
		_, _, err := SelectDevice(spec)
		require.Error(t, err, spec)
		require.Contains(t, err.Error(), `"`+spec+`"`, "the error names the spec")
		require.Contains(t, err.Error(), "use auto or cpu", "the error says what is available")
	}
	for _, spec := range []string{"gpu", "cuda:x", "cuda:-1", "CPU"} {
		_, _, err := SelectDevice(spec)
		require.ErrorContains(t, err, "want auto, cpu, cuda or cuda:N", spec)
	}
}

func TestCuDNNBenchmarkFlag(t *testing.T) {
	defer SetCuDNNBenchmark(CuDNNBenchmark())
	SetCuDNNBenchmark(true)
	require.True(t, CuDNNBenchmark())
	SetCuDNNBenchmark(false)
	require.False(t, CuDNNBenchmark())
}

func TestTransfersOnCPU(t *testing.T) {
	x := Must(Randn([]int64{2, 3}))
	pinned, err := x.IsPinned()
	require.NoError(t, err)
	require.False(t, pinned)
	y := Must(x.ToNonBlocking(CPU, Float64))
	require.Equal(t, Float64, y.DType())
	require.InDeltaSlice(t, Must(x.Float64s()), Must(y.Float64s()), 0)
	if !CUDAIsAvailable() {
		_, err := x.PinMemory()
		require.ErrorContains(t, err, "CUDA is not available", "pinning needs CUDA")
		require.Error(t, CUDASynchronize(-1))
	}
}

func TestSetDataKeepsIdentity(t *testing.T) {
	p := Must(Randn([]int64{4, 3, 2, 2}))
	require.NoError(t, p.SetRequiresGrad(true))
	src := Must(p.Detach())
	cl := Must(src.ContiguousAs(ChannelsLast))
	require.NoError(t, p.SetData(cl))
	require.True(t, p.RequiresGrad())
	require.True(t, p.IsLeaf())
	ok, err := p.IsContiguous(ChannelsLast)
	require.NoError(t, err)
	require.True(t, ok, "p now has the channels-last layout")
	require.Equal(t, Must(src.Float32s()), Must(p.Float32s()))

	loss := Must(Must(p.Mul(p)).Sum())
	require.NoError(t, loss.Backward())
	require.NotNil(t, Must(p.Grad()), "p still collects gradients")
}
