package shift

import (
	"context"
	"math"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
	"github.com/stretchr/testify/require"
)

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

// batches yields xs as an image source.
func batches(xs ...*torch.Tensor) func(yield func(*torch.Tensor, error) bool) {
	return func(yield func(*torch.Tensor, error) bool) {
		for _, x := range xs {
			if !yield(x, nil) {
				return
			}
		}
	}
}

func TestSymmetricKL(t *testing.T) {
	cases := []struct {
		name                     string
		mean1, var1, mean2, var2 float64
		want                     float64
	}{
		{"equal", 0.3, 2, 0.3, 2, 0},
		{"mean one sd apart", 1, 1, 0, 1, 0.5},
		{"mean two sd apart", 0, 4, 4, 4, 2},
		{"sd doubled", 0, 4, 0, 1, 0.25 * 1.5 * 1.5},
		{"sd halved", 0, 1, 0, 4, 0.25 * 1.5 * 1.5},
		{"both", 1, 4, 0, 1, 0.25 * (4 + 0.25 - 2 + 1.25)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.InDelta(t, c.want, SymmetricKL(c.mean1, c.var1, c.mean2, c.var2), 1e-12)
			require.InDelta(t, c.want, SymmetricKL(c.mean2, c.var2, c.mean1, c.var1), 1e-12, "symmetric")
		})
	}
}

// channelStats returns the per-channel mean and biased variance of x over
// N, H and W.
func channelStats(t *testing.T, x *torch.Tensor) (mean, variance []float64) {
	mean = must[[]float64](t)(must[*torch.Tensor](t)(x.MeanDims([]int64{0, 2, 3}, false)).Float64s())
	variance = must[[]float64](t)(must[*torch.Tensor](t)(x.Var([]int64{0, 2, 3}, false, false)).Float64s())
	return mean, variance
}

func setStats(t *testing.T, bn *nn.BatchNorm, mean, variance []float64) {
	m, v := make([]float32, len(mean)), make([]float32, len(variance))
	for c := range mean {
		m[c], v[c] = float32(mean[c]), float32(variance[c])
	}
	require.NoError(t, bn.Buffer("running_mean").Copy_(must[*torch.Tensor](t)(torch.FromSlice(m))))
	require.NoError(t, bn.Buffer("running_var").Copy_(must[*torch.Tensor](t)(torch.FromSlice(v))))
}

// TestMeasureKnownShift stores the exact statistics of conv1's output in
// bn1, then shifts the stored mean, or scales the images, by known
// amounts: the stem's divergence is zero at first and then follows the
// closed form, growing with the shift.
func TestMeasureKnownShift(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	torch.ManualSeed(3)
	net := must[*models.ResNet](t)(models.New("resnet18", 0))
	defer nn.Free(net)
	nn.Train(net, false)
	x := must[*torch.Tensor](t)(torch.Randn([]int64{6, 3, 32, 32}))
	var mean, variance []float64
	require.NoError(t, torch.NoGrad(func() error {
		mean, variance = channelStats(t, must[*torch.Tensor](t)(net.Conv1.Forward(x)))
		return nil
	}))
	eps := net.BN1.Config.Eps
	stem := func(scale float64) float64 {
		xs := must[*torch.Tensor](t)(x.MulScalar(scale))
		// Two batches: the statistics are merged across them.
		r := must[*Report](t)(Measure(context.Background(), net, batches(
			must[*torch.Tensor](t)(xs.Narrow(0, 0, 4)), must[*torch.Tensor](t)(xs.Narrow(0, 4, 2))), 0))
		require.Equal(t, 6, r.Images)
		require.Equal(t, "bn1", r.Layers[0].Path)
		require.Equal(t, "stem", r.Stages[0].Name)
		return r.Stages[0].Divergence
	}

	t.Run("mean shifted by d standard deviations", func(t *testing.T) {
		prev := -1.0
		for _, d := range []float64{0, 0.25, 0.5, 1, 2} {
			shifted := make([]float64, len(mean))
			for c := range mean {
				shifted[c] = mean[c] - d*math.Sqrt(variance[c]+eps)
			}
			setStats(t, net.BN1, shifted, variance)
			got := stem(1)
			require.InDelta(t, d*d/2, got, 1e-4*(1+d*d), "d = %v", d)
			require.Greater(t, got, prev, "grows with d")
			prev = got
		}
	})
	t.Run("images scaled by a", func(t *testing.T) {
		setStats(t, net.BN1, mean, variance)
		prev := -1.0
		for _, a := range []float64{1, 1.25, 1.5, 2, 4} {
			want := 0.0
			for c := range mean {
				want += SymmetricKL(a*mean[c], a*a*variance[c]+eps, mean[c], variance[c]+eps)
			}
			want /= float64(len(mean))
			got := stem(a)
			require.InDelta(t, want, got, 1e-5+1e-4*want, "a = %v", a)
			require.Greater(t, got, prev, "grows with a")
			prev = got
		}
		require.Less(t, stem(1), 1e-8, "zero when the statistics are the stored ones")
	})
	t.Run("normalisation", func(t *testing.T) {
		// Images as the stored statistics expect fit; the same images 4
		// times too large, as from a normalisation with a quarter of the
		// weights' std, are warned about.
		setStats(t, net.BN1, mean, variance)
		inMean, inVar := channelStats(t, x)
		for _, a := range []float64{1, 4} {
			xs := must[*torch.Tensor](t)(x.MulScalar(a))
			r := must[*Report](t)(Measure(context.Background(), net, batches(xs), 0))
			for c := range inMean {
				require.InDelta(t, a*inMean[c], r.Input.Mean[c], 1e-5)
				require.InDelta(t, a*math.Sqrt(inVar[c]), r.Input.Std[c], 1e-4)
			}
			if a == 1 {
				require.Empty(t, r.Normalization())
			} else {
				require.Contains(t, r.Normalization(), "far from 0 and 1")
				require.Contains(t, r.Normalization(), "data.mean and data.std may not be those the weights were trained with")
			}
		}
	})
	t.Run("maxImages", func(t *testing.T) {
		r := must[*Report](t)(Measure(context.Background(), net, batches(x, x), 9))
		require.Equal(t, 9, r.Images)
		require.Len(t, r.Layers, 20, "resnet18's BatchNorm layers")
		for _, st := range r.Stages {
			require.Positive(t, st.Layers, st.Name)
		}
	})
}

// adapted returns a random resnet18 whose BatchNorm statistics are those
// of x (one cumulative pass, as AdaBN).
func adapted(t *testing.T, x *torch.Tensor) *models.ResNet {
	torch.ManualSeed(7)
	net := must[*models.ResNet](t)(models.New("resnet18", 0))
	nn.Train(net, true)
	require.NoError(t, nn.Walk(net, func(_ string, m nn.Module) error {
		if bn, ok := m.(*nn.BatchNorm); ok {
			bn.Config.Momentum = nil
		}
		return nil
	}))
	require.NoError(t, torch.NoGrad(func() error {
		_, err := net.Features(x, "layer4")
		return err
	}))
	nn.Train(net, false)
	return net
}

// TestChooseBN checks the decision on images like those the statistics
// come from and on transformed ones.
// resnetStages are the stages of a ResNet's report, in depth order.
var resnetStages = []string{"stem", "layer1", "layer2", "layer3", "layer4"}

func TestChooseBN(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	torch.ManualSeed(11)
	x := must[*torch.Tensor](t)(torch.Rand([]int64{16, 3, 32, 32}))
	net := adapted(t, x)
	defer nn.Free(net)
	torch.ManualSeed(12)
	same := must[*torch.Tensor](t)(torch.Rand([]int64{16, 3, 32, 32}))
	inverted := must[*torch.Tensor](t)(must[*torch.Tensor](t)(same.MulScalar(-3)).AddScalar(1))
	cases := []struct {
		name   string
		images *torch.Tensor
		mode   string
		says   string
	}{
		{"same distribution", same, "frozen", "small shift"},
		{"inverted and stretched", inverted, "adapt", "large shift"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := must[*Report](t)(Measure(context.Background(), net, batches(c.images), 0))
			mode, why := ChooseBN(r)
			t.Logf("%s\n%s", why, r.Table())
			require.Equal(t, c.mode, mode, "%s\n%s", why, r.Table())
			require.Contains(t, r.Implication(), c.says)
			require.Contains(t, r.Implication(), "batchnorm: "+c.mode)
		})
	}
}

// report makes a Report with one layer per stage of the given shifts.
func report(shifts ...float64) *Report {
	r := &Report{Images: 100}
	for i, d := range shifts {
		r.Layers = append(r.Layers, Layer{Path: resnetStages[i], Stage: resnetStages[i], Divergence: d})
		r.Stages = append(r.Stages, StageShift{Name: resnetStages[i], Divergence: d, Layers: 1})
	}
	return r
}

func TestSuggestFreeze(t *testing.T) {
	small := report(0, 0, 0, 0, 0)
	big := 10 * Threshold
	fromStem := report(big, big, big, big, big)
	fromLayer3 := report(0, 0, 0, big, big)
	fromLayer4 := report(0, 0, 0, 0, big)
	cases := []struct {
		name   string
		r      *Report
		nTrain int
		want   string
	}{
		{"small shift, small data", small, 500, "all"},
		{"small shift, medium data", small, 5000, "layer3"},
		{"small shift, large data", small, 50000, "layer2"},
		{"shift from the stem, small data", fromStem, 500, "layer3"},
		{"shift from the stem, medium data", fromStem, 5000, "layer1"},
		{"shift from the stem, large data", fromStem, 50000, "none"},
		{"shift from layer3, medium data", fromLayer3, 5000, "layer2"},
		{"shift from layer3, large data", fromLayer3, 50000, "layer2"},
		{"shift in layer4, medium data", fromLayer4, 5000, "layer3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := SuggestFreeze(c.r, c.nTrain)
			require.Equal(t, c.want, got, why)
			require.NotEmpty(t, why)
		})
	}
}

func TestTable(t *testing.T) {
	r := report(0.5, 0.1, 0, 0, 0)
	tab := r.Table()
	for _, want := range []string{"stem", "layer4", "0.5000", "shift 0.1500"} {
		require.Contains(t, tab, want)
	}
	require.InDelta(t, 0.15, r.Shift(), 1e-12, "mean of stem to layer3")
}

// TestMeasureRefusesNonFinite: a negative stored variance, or activations
// that make the divergence NaN or infinite, are an error naming the
// layer, not a shift of NaN that ChooseBN would advise from.
func TestMeasureRefusesNonFinite(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	net := must[*models.ResNet](t)(models.New("resnet18", 0))
	defer nn.Free(net)
	nn.Train(net, false)
	variance := make([]float64, 64)
	for c := range variance {
		variance[c] = -4
	}
	setStats(t, net.BN1, make([]float64, 64), variance)
	x := must[*torch.Tensor](t)(torch.Randn([]int64{2, 3, 32, 32}))
	_, err := Measure(context.Background(), net, batches(x), 0)
	require.ErrorContains(t, err, "shift: bn1: running_var has negative values")

	// Images whose activations overflow give a divergence of NaN or Inf.
	setStats(t, net.BN1, make([]float64, 64), make([]float64, 64))
	huge := must[*torch.Tensor](t)(torch.Full([]int64{2, 3, 32, 32}, 3e38))
	_, err = Measure(context.Background(), net, batches(huge), 0)
	require.ErrorContains(t, err, "shift: bn1: the divergence from the stored statistics is")
}

// TestMeasureAnyFamily: Measure finds the BatchNorm layers by walking the
// modules and sees them through the network's own forward pass, so it
// measures a MobileNetV3 as a ResNet. It measures in evaluation mode,
// whatever the network's mode, which it leaves as it was, and it leaves
// no observer behind.
func TestMeasureAnyFamily(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	torch.ManualSeed(4)
	net := must[models.Network](t)(models.Build("mobilenet_v3_small", 0))
	defer nn.Free(net)
	var bns []*nn.BatchNorm
	require.NoError(t, nn.Walk(net, func(_ string, m nn.Module) error {
		if bn, ok := m.(*nn.BatchNorm); ok {
			bns = append(bns, bn)
		}
		return nil
	}))
	x := must[*torch.Tensor](t)(torch.Randn([]int64{4, 3, 32, 32}))
	nn.Train(net, false)
	want := must[*Report](t)(Measure(context.Background(), net, batches(x), 0))
	require.Len(t, want.Layers, len(bns))
	require.Positive(t, want.Layers[0].Divergence)
	nn.Train(net, true)
	got := must[*Report](t)(Measure(context.Background(), net, batches(x), 0))
	require.Equal(t, want, got, "measured in evaluation mode: the stored statistics unchanged")
	for _, bn := range bns {
		require.True(t, bn.Training(), "the mode is put back")
		require.Nil(t, bn.Observe, "no observer left behind")
	}
}
