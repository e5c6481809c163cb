package nn_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

func prefixed(entries []nn.Named[*torch.Tensor], prefix string) []nn.Named[*torch.Tensor] {
	out := make([]nn.Named[*torch.Tensor], len(entries))
	for i, e := range entries {
		out[i] = nn.Named[*torch.Tensor]{Name: prefix + e.Name, Value: e.Value}
	}
	return out
}

// TestLoadStripsCommonPrefix: a state dict saved from DataParallel
// (module.) or a wrapper (model., backbone.) loads, and says so.
func TestLoadStripsCommonPrefix(t *testing.T) {
	src := tiny(t)
	for _, p := range nn.CommonPrefixes {
		t.Run(p, func(t *testing.T) {
			dst := tiny(t)
			r, err := nn.LoadStateDict(dst, prefixed(nn.StateDict(src), p), nn.LoadOptions{})
			require.NoError(t, err)
			require.True(t, r.Clean())
			require.Equal(t, p, r.Stripped)
			require.Contains(t, r.String(), fmt.Sprintf("prefix %q removed", p))
			require.Equal(t, floats(t, src.Base().Child("0").Base().Parameter("weight")), floats(t, dst.Base().Child("0").Base().Parameter("weight")))
		})
	}
	// Another prefix is not guessed at: the keys are reported as they are.
	_, err := nn.LoadStateDict(tiny(t), prefixed(nn.StateDict(src), "net."), nn.LoadOptions{})
	require.ErrorContains(t, err, "unexpected keys net.0.weight")
}

// TestLoadListsFewKeys: a file of another model names a few keys and
// counts the rest instead of listing them all.
func TestLoadListsFewKeys(t *testing.T) {
	var entries []nn.Named[*torch.Tensor]
	for i := range 40 {
		entries = append(entries, nn.Named[*torch.Tensor]{Name: fmt.Sprintf("other.%d", i), Value: must[*torch.Tensor](t)(torch.Zeros([]int64{1}))})
	}
	_, err := nn.LoadStateDict(tiny(t), entries, nn.LoadOptions{})
	require.ErrorContains(t, err, "unexpected keys other.0, other.1, other.2, other.3, other.4 and 35 more (40 in all)")
	require.NotContains(t, err.Error(), "other.5")
	require.ErrorContains(t, err, "and 5 more (10 in all)", "missing keys are counted too")
}

// TestLoadRefusesNonFinite: NaN or infinite weights are refused, naming
// the tensor, and nothing is copied.
func TestLoadRefusesNonFinite(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		src, dst := tiny(t), tiny(t)
		before := floats(t, dst.Base().Child("0").Base().Parameter("weight"))
		entries := nn.StateDict(src)
		for i, e := range entries {
			if e.Name == "4.bias" {
				entries[i].Value = must[*torch.Tensor](t)(torch.Full(e.Value.Shape(), v))
			}
		}
		_, err := nn.LoadStateDict(dst, entries, nn.LoadOptions{})
		require.ErrorContains(t, err, "4.bias: holds NaN or infinite values")
		require.Equal(t, before, floats(t, dst.Base().Child("0").Base().Parameter("weight")))
	}
}

// TestLoadEscapesKeys: a key from a file that holds terminal control
// characters is printed escaped.
func TestLoadEscapesKeys(t *testing.T) {
	entries := append(nn.StateDict(tiny(t)), nn.Named[*torch.Tensor]{Name: "evil\x1b[2J", Value: must[*torch.Tensor](t)(torch.Zeros([]int64{1}))})
	_, err := nn.LoadStateDict(tiny(t), entries, nn.LoadOptions{})
	require.ErrorContains(t, err, `unexpected keys "evil\x1b[2J"`)
	require.NotContains(t, err.Error(), "\x1b")
}
