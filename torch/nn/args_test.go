package nn_test

import (
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// TestConstructorsRejectBadArguments: what PyTorch would reject (or
// silently misuse) is an error naming the layer and the value.
func TestConstructorsRejectBadArguments(t *testing.T) {
	for _, c := range []struct {
		name string
		make func() error
		want string
	}{
		{"stochastic depth p", func() error { _, err := nn.NewStochasticDepth(1.5, "row"); return err }, "[0, 1], got 1.5"},
		{"stochastic depth mode", func() error { _, err := nn.NewStochasticDepth(0.1, "col"); return err }, `got "col"`},
		{"layernorm empty shape", func() error { _, err := nn.NewLayerNorm(nil, 1e-5, true); return err }, "empty"},
		{"layernorm zero size", func() error { _, err := nn.NewLayerNorm([]int64{4, 0}, 1e-5, true); return err }, "[4 0]"},
		{"attention heads", func() error { _, err := nn.NewMultiheadAttention(10, 4, 0); return err }, "10 must be a positive multiple of num_heads 4"},
		{"attention dropout", func() error { _, err := nn.NewMultiheadAttention(8, 4, -0.1); return err }, "got -0.1"},
		{"window attention heads", func() error {
			_, err := nn.NewShiftedWindowAttention(8, [2]int64{7, 7}, [2]int64{3, 3}, 3)
			return err
		}, "dim 8 must be a positive multiple of num_heads 3"},
		{"window attention window", func() error {
			_, err := nn.NewShiftedWindowAttention(8, [2]int64{0, 7}, [2]int64{}, 2)
			return err
		}, "window [0 7]"},
		{"gelu approximation", func() error { _, err := nn.NewGELU("erf"); return err }, `got "erf"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.ErrorContains(t, c.make(), c.want)
		})
	}
}
