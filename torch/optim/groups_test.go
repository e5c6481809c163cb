package optim_test

import (
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/torch/optim"
	"github.com/stretchr/testify/require"
)

// TestDecayGroups: weights take the template's decay; biases and BatchNorm
// parameters go to a group without; frozen parameters to neither.
func TestDecayGroups(t *testing.T) {
	l1 := torch.Must(nn.NewLinear(4, 3, true))
	bn := torch.Must(nn.NewBatchNorm1d(nn.DefaultBatchNorm(3)))
	l2 := torch.Must(nn.NewLinear(3, 2, true))
	l3 := torch.Must(nn.NewLinear(2, 2, false))
	m := nn.NewSequential(l1, bn, l2, l3)
	defer nn.Free(m)
	require.NoError(t, l2.Parameter("weight").SetRequiresGrad(false))

	template := optim.AdamWGroup()
	template.LR, template.WeightDecay = 0.1, 0.05
	groups := optim.DecayGroups(m, template)
	require.Len(t, groups, 2)
	require.Equal(t, []*torch.Tensor{l1.Parameter("weight"), l3.Parameter("weight")}, groups[0].Params)
	require.Equal(t, []*torch.Tensor{l1.Parameter("bias"), bn.Parameter("weight"), bn.Parameter("bias"), l2.Parameter("bias")},
		groups[1].Params)
	require.Equal(t, 0.05, groups[0].WeightDecay)
	require.Equal(t, 0.0, groups[1].WeightDecay)
	for _, g := range groups {
		require.Equal(t, 0.1, g.LR)
		require.Equal(t, template.Betas, g.Betas)
	}

	require.Len(t, optim.DecayGroups(l3, template), 1, "no biases: no second group")
	require.NoError(t, nn.Freeze(m))
	require.Empty(t, optim.DecayGroups(m, template), "everything frozen")
}
