package models

import (
	"fmt"
	"strings"

	"github.com/finetune-go/finetune/torch/nn"
)

// StageParameters returns the state-dict names of the parameters each of
// n's stages holds, in the order of StageNames: what freezing a network
// up to a stage freezes. Every parameter but the classifier's belongs to
// exactly one stage; one held by no stage's module (ViT's class token
// and position embedding) belongs to the first, whose output it shapes.
// A stage without parameters (a ResNet's "pool") has an empty list.
func StageParameters(n Network) ([]nn.Named[[]string], error) {
	mods, err := stageModules(n)
	if err != nil {
		return nil, err
	}
	stageOf := map[nn.Module]int{}
	for i, ms := range mods {
		for _, m := range ms {
			stageOf[m] = i
		}
	}
	out := make([]nn.Named[[]string], len(mods))
	for i, name := range n.StageNames() {
		out[i].Name = name
	}
	seen := map[string]bool{}
	err = nn.Walk(n, func(path string, m nn.Module) error {
		i, ok := stageOf[m]
		if !ok {
			return nil
		}
		for _, p := range nn.NamedParameters(m) {
			name := join(path, p.Name)
			if !seen[name] {
				seen[name] = true
				out[i].Value = append(out[i].Value, name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	classifier, _ := n.Classifier()
	for _, p := range nn.NamedParameters(n) {
		if !seen[p.Name] && !strings.HasPrefix(p.Name, classifier) {
			out[0].Value = append(out[0].Value, p.Name)
		}
	}
	return out, nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// stageModules returns the modules each stage of n runs, in the order of
// StageNames.
func stageModules(n Network) ([][]nn.Module, error) {
	layers := func(ls ...nn.Layer) []nn.Module {
		out := make([]nn.Module, len(ls))
		for i, l := range ls {
			out[i] = l
		}
		return out
	}
	switch m := n.(type) {
	case *ResNet:
		out := [][]nn.Module{{m.Conv1, m.BN1}}
		for _, l := range m.Layer {
			out = append(out, []nn.Module{l})
		}
		return append(out, []nn.Module{m.AvgPool}), nil
	case *Staged:
		var out [][]nn.Module
		for _, name := range m.StageNames() {
			ls, err := m.StageLayers(name)
			if err != nil {
				return nil, err
			}
			out = append(out, layers(ls...))
		}
		return out, nil
	case *ConvNeXt:
		return pyramidModules(m.Body, m.norm), nil
	case *Swin:
		return pyramidModules(m.Body, m.Norm), nil
	case *ViT:
		out := [][]nn.Module{{m.ConvProj}}
		for _, b := range m.Encoder.Blocks {
			out = append(out, []nn.Module{b})
		}
		return append(out, []nn.Module{m.Encoder.LN}), nil
	}
	return nil, fmt.Errorf("models: %s: stages of a %T are not known", n.ArchName(), n)
}

// pyramidModules are the modules of pyramidStages' stages.
func pyramidModules(body *nn.Sequential, pool nn.Module) [][]nn.Module {
	c := body.Children()
	return [][]nn.Module{{c[0].Value}, {c[1].Value}, {c[2].Value, c[3].Value}, {c[4].Value, c[5].Value},
		{c[6].Value, c[7].Value}, {pool}}
}

// HasBatchNorm reports whether the architecture called name normalises
// with BatchNorm layers: the ResNets, MobileNetV3, EfficientNet and
// RegNet do; ConvNeXt, ViT and Swin normalise with LayerNorm, each image
// by itself.
func HasBatchNorm(name string) bool {
	_, convnext := convnexts[name]
	_, vit := vits[name]
	_, swin := swins[name]
	return !convnext && !vit && !swin
}
