package nn_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

func floats(t *testing.T, x *torch.Tensor) []float32 {
	v, err := x.Float32s()
	require.NoError(t, err)
	return v
}

// TestBatchNormEvalUnderTrainingParent: the running statistics stay put
// and the output is the eval-mode normalisation while the parent trains.
func TestBatchNormEvalUnderTrainingParent(t *testing.T) {
	torch.ManualSeed(3)
	m := tiny(t)
	nn.Train(m, true)
	nn.TrainWhere(m, false, isBN)
	bn := must[nn.Module](t)(nn.Find(m, "1")).(*nn.BatchNorm)
	require.False(t, bn.Training())
	require.True(t, m.Base().Training())
	mean := floats(t, bn.Buffer("running_mean"))
	x := must[*torch.Tensor](t)(torch.Randn([]int64{4, 3, 8, 8}))
	_, err := m.Forward(x)
	require.NoError(t, err)
	require.Equal(t, mean, floats(t, bn.Buffer("running_mean")))
	require.Equal(t, 0.0, must[float64](t)(bn.Buffer("num_batches_tracked").Item()))

	h := must[*torch.Tensor](t)(must[*nn.Conv2d](t)(must[nn.Module](t)(nn.Find(m, "0")).(*nn.Conv2d), nil).Forward(x))
	got := must[*torch.Tensor](t)(bn.Forward(h))
	want := must[*torch.Tensor](t)(torch.BatchNorm(h, bn.Parameter("weight"), bn.Parameter("bias"),
		bn.Buffer("running_mean"), bn.Buffer("running_var"), false, 0.1, 1e-5))
	require.Equal(t, floats(t, want), floats(t, got))
}

// TestFreezingAndModeAreIndependent: requires_grad and training mode are
// two switches; flipping one never moves the other.
func TestFreezingAndModeAreIndependent(t *testing.T) {
	m := tiny(t)
	modes := func() []bool {
		var out []bool
		require.NoError(t, nn.Walk(m, func(_ string, x nn.Module) error {
			out = append(out, x.Base().Training())
			return nil
		}))
		return out
	}
	nn.TrainWhere(m, false, isBN)
	before := modes()
	require.NoError(t, nn.Freeze(m))
	require.Equal(t, before, modes(), "freezing changed a mode")
	total, trainable := nn.CountParameters(m)
	require.Equal(t, int64(0), trainable)
	require.Equal(t, int64(3*4*9+4+4+4*6*9+6+6*3+3), total)

	require.NoError(t, nn.Unfreeze(must[nn.Module](t)(nn.Find(m, "9"))))
	require.Len(t, nn.Trainable(m), 2)
	nn.Train(m, false)
	for _, p := range nn.NamedParameters(m) {
		require.Equal(t, p.Name == "9.weight" || p.Name == "9.bias", p.Value.RequiresGrad(), p.Name)
	}
}

func TestTreeQueries(t *testing.T) {
	m := tiny(t)
	var paths []string
	require.NoError(t, nn.Walk(m, func(path string, _ nn.Module) error {
		paths = append(paths, path)
		return nil
	}))
	require.Equal(t, []string{"", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}, paths)
	var keys []string
	for _, e := range nn.StateDict(m) {
		keys = append(keys, e.Name)
	}
	require.Equal(t, []string{"0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
		"1.num_batches_tracked", "4.weight", "4.bias", "9.weight", "9.bias"}, keys)
	_, err := nn.Find(m, "1.nope")
	require.ErrorContains(t, err, `no child "nope"`)
	require.Error(t, m.Base().RegisterModule("0", nn.NewIdentity()), "duplicate name")
	require.Error(t, m.Base().RegisterModule("a.b", nn.NewIdentity()), "dotted name")
}

// TestDefaultInitDistributions checks the statistics of PyTorch's default
// initialisation on large layers: U(-1/√fan_in, 1/√fan_in).
func TestDefaultInitDistributions(t *testing.T) {
	torch.ManualSeed(11)
	lin := must[*nn.Linear](t)(nn.NewLinear(400, 300, true))
	conv := must[*nn.Conv2d](t)(nn.NewConv2d(nn.Conv2dConfig{InChannels: 32, OutChannels: 64, Kernel: [2]int64{3, 3}, Bias: true}))
	cases := []struct {
		name  string
		value *torch.Tensor
		fanIn float64
	}{
		{"linear weight", lin.Parameter("weight"), 400},
		{"linear bias", lin.Parameter("bias"), 400},
		{"conv weight", conv.Parameter("weight"), 32 * 9},
		{"conv bias", conv.Parameter("bias"), 32 * 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := floats(t, c.value)
			bound := 1 / math.Sqrt(c.fanIn)
			var sum, sq float64
			for _, x := range v {
				require.LessOrEqual(t, math.Abs(float64(x)), bound)
				sum += float64(x)
				sq += float64(x) * float64(x)
			}
			n := float64(len(v))
			mean, variance := sum/n, sq/n-(sum/n)*(sum/n)
			wantVar := bound * bound / 3
			// Standard errors of the sample mean and variance of a uniform.
			require.Less(t, math.Abs(mean), 5*math.Sqrt(wantVar/n))
			require.Less(t, math.Abs(variance-wantVar), 5*wantVar*math.Sqrt(0.8/n)+1e-12)
		})
	}
}

func TestLoadStateDict(t *testing.T) {
	src, dst := tiny(t), tiny(t)
	entries := nn.StateDict(src)
	r, err := nn.LoadStateDict(dst, entries, nn.LoadOptions{})
	require.NoError(t, err)
	require.True(t, r.Clean())
	require.Len(t, r.Loaded, len(entries))
	require.Equal(t, floats(t, src.Base().Child("9").Base().Parameter("weight")), floats(t, dst.Base().Child("9").Base().Parameter("weight")))

	other := must[*torch.Tensor](t)(torch.Zeros([]int64{5, 6}))
	extra := must[*torch.Tensor](t)(torch.Zeros([]int64{1}))
	var edited []nn.Named[*torch.Tensor]
	for _, e := range entries {
		switch e.Name {
		case "1.bias":
			continue // missing
		case "9.weight":
			e.Value = other // wrong shape
		}
		edited = append(edited, e)
	}
	edited = append(edited, nn.Named[*torch.Tensor]{Name: "fc.extra", Value: extra})
	before := floats(t, dst.Base().Child("0").Base().Parameter("weight"))
	r, err = nn.LoadStateDict(dst, edited, nn.LoadOptions{})
	require.Error(t, err)
	for _, want := range []string{"missing keys 1.bias", "unexpected keys fc.extra", "9.weight has shape [5 6] in the file but [3 6] in the model"} {
		require.ErrorContains(t, err, want)
	}
	require.Equal(t, []string{"1.bias"}, r.Missing)
	require.Equal(t, []string{"fc.extra"}, r.Unexpected)
	require.Len(t, r.Mismatched, 1)
	require.Equal(t, before, floats(t, dst.Base().Child("0").Base().Parameter("weight")), "a failed load copied values")

	r, err = nn.LoadStateDict(dst, edited, nn.LoadOptions{AllowMissing: true, AllowUnexpected: true, SkipMismatched: true})
	require.NoError(t, err)
	require.False(t, r.Clean())
	require.Contains(t, r.String(), "9.weight: shape [5 6] in file, [3 6] in model")
}

func TestSafetensorsRoundTrip(t *testing.T) {
	m := tiny(t)
	path := filepath.Join(t.TempDir(), "tiny.safetensors")
	require.NoError(t, nn.WriteSafetensors(path, nn.StateDict(m), map[string]string{"arch": "tiny"}))
	fresh := tiny(t)
	r, err := nn.LoadFile(fresh, path, nn.LoadOptions{})
	require.NoError(t, err)
	require.True(t, r.Clean())
	for i, e := range nn.StateDict(m) {
		got := nn.StateDict(fresh)[i]
		require.Equal(t, e.Value.DType(), got.Value.DType(), e.Name)
		require.Equal(t, must[[]byte](t)(e.Value.Bytes()), must[[]byte](t)(got.Value.Bytes()), e.Name)
	}

	bad := filepath.Join(t.TempDir(), "bad.pth")
	require.NoError(t, os.WriteFile(bad, []byte("PK\x03\x04 truncated"), 0o644))
	_, err = nn.LoadFile(fresh, bad, nn.LoadOptions{})
	require.ErrorContains(t, err, "bad.pth")
}
