package torch

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStringMatchesPyTorch compares String with repr() in Debian's PyTorch
// for the same values.
func TestStringMatchesPyTorch(t *testing.T) {
	cases := []struct {
		name   string
		python string
		make   func() *Tensor
	}{
		{"small floats", "torch.tensor([1.5e-5, 2.0, 3.0])",
			func() *Tensor { return Must(FromSlice([]float32{1.5e-5, 2, 3})) }},
		{"integral float64 matrix", "torch.tensor([[1.,2.],[3.,4.]], dtype=torch.float64)",
			func() *Tensor { return Must(FromSlice([]float64{1, 2, 3, 4}, 2, 2)) }},
		{"3-d", "torch.arange(12.).reshape(2,2,3)",
			func() *Tensor { return Must(Must(Arange(0, 12, 1)).Reshape(2, 2, 3)) }},
		{"scalar", "torch.tensor(2.5)", func() *Tensor { return Must(Scalar(2.5)) }},
		{"fractions", "torch.tensor([[0.25, -1.125], [3.5, 100.0625]])",
			func() *Tensor { return Must(FromSlice([]float32{0.25, -1.125, 3.5, 100.0625}, 2, 2)) }},
		{"summarised int64", "torch.arange(2000).reshape(40,50)",
			func() *Tensor { return Must(Must(Arange(0, 2000, 1, Int64)).Reshape(40, 50)) }},
		{"long row wraps", "torch.arange(30.) / 7",
			func() *Tensor { return Must(Must(Arange(0, 30, 1)).DivScalar(7)) }},
		{"bool", "torch.tensor([True, False])",
			func() *Tensor { return Must(FromSlice([]bool{true, false})) }},
		{"int32", "torch.tensor([1, -20], dtype=torch.int32)",
			func() *Tensor { return Must(FromSlice([]int32{1, -20})) }},
		{"requires grad", "torch.ones(2, requires_grad=True)",
			func() *Tensor {
				x := Must(Ones([]int64{2}))
				require.NoError(t, x.SetRequiresGrad(true))
				return x
			}},
		{"empty", "torch.zeros(0, 3)", func() *Tensor { return Must(Zeros([]int64{0, 3})) }},
	}
	script := "import torch\n"
	for _, c := range cases {
		script += "print(repr(" + c.python + "))\nprint('--')\n"
	}
	out, err := exec.Command("/usr/bin/python3", "-c", script).CombinedOutput()
	require.NoError(t, err, string(out))
	want := strings.Split(string(out), "\n--\n")
	require.Len(t, want, len(cases)+1)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, want[i], c.make().String())
		})
	}
}
