package optim

import (
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// DecayGroups returns the parameters under m that require grad, in module
// order, as two copies of template: the first keeps template's weight
// decay, the second, with weight decay 0, holds BatchNorm parameters and
// biases, which weight decay would only pull away from the scale and
// shift the data needs (the usual split, as timm's
// param_groups_weight_decay). template's Params are replaced; a group
// left empty is left out.
func DecayGroups(m nn.Module, template ParamGroup) []ParamGroup {
	var decay, plain []*torch.Tensor
	_ = nn.Walk(m, func(_ string, x nn.Module) error {
		_, isBN := x.(*nn.BatchNorm)
		for _, p := range x.Base().Parameters() {
			if !p.Value.RequiresGrad() {
				continue
			}
			if isBN || p.Name == "bias" {
				plain = append(plain, p.Value)
			} else {
				decay = append(decay, p.Value)
			}
		}
		return nil
	})
	var groups []ParamGroup
	for _, g := range []struct {
		params []*torch.Tensor
		wd     float64
	}{{decay, template.WeightDecay}, {plain, 0}} {
		if len(g.params) == 0 {
			continue
		}
		pg := template
		pg.Params, pg.WeightDecay = g.params, g.wd
		groups = append(groups, pg)
	}
	return groups
}
