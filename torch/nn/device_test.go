package nn_test

import (
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

func TestToChannelsLastKeepsParameters(t *testing.T) {
	torch.ManualSeed(5)
	m := tiny(t)
	nn.Train(m, false)
	x := must[*torch.Tensor](t)(torch.Randn([]int64{2, 3, 8, 8}))
	before := floats(t, must[*torch.Tensor](t)(m.Forward(x)))
	params := nn.NamedParameters(m)
	w := params[0].Value
	require.NoError(t, w.SetGrad(must[*torch.Tensor](t)(w.OnesLike())))

	require.NoError(t, nn.To(m, torch.CPU, torch.ChannelsLast))
	after := nn.NamedParameters(m)
	for i := range params {
		require.Same(t, params[i].Value, after[i].Value, "%s keeps its identity", params[i].Name)
		require.True(t, after[i].Value.RequiresGrad(), params[i].Name)
	}
	cl, err := w.IsContiguous(torch.ChannelsLast)
	require.NoError(t, err)
	require.True(t, cl, "the convolution weight is channels-last")
	g := must[*torch.Tensor](t)(w.Grad())
	cl, err = g.IsContiguous(torch.ChannelsLast)
	require.NoError(t, err)
	require.True(t, cl, "so is its gradient")
	require.Equal(t, []int64{4}, nn.NamedBuffers(m)[0].Value.Shape(), "buffers keep their shape")

	xcl := must[*torch.Tensor](t)(x.ContiguousAs(torch.ChannelsLast))
	require.InDeltaSlice(t, before, floats(t, must[*torch.Tensor](t)(m.Forward(xcl))), 1e-5, "the layout changes no result")
}
