package models

import (
	"fmt"
	"maps"
	"slices"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// Network is a classification network of the zoo, built with torchvision's
// module tree, state-dict keys and initialisation. Forward returns the
// logits; a network built with numClasses 0 has no classifier and
// Forward is not available.
type Network interface {
	nn.Layer
	// ArchName is the architecture's name, torchvision's builder name
	// ("resnet50", "convnext_tiny").
	ArchName() string
	// StageNames returns the named points of its feature hierarchy that
	// Features accepts, in order; the last is "pool", the pooled,
	// flattened features the classifier sees.
	StageNames() []string
	// Features runs the network up to the last of the named stages and
	// returns the output of each requested one.
	Features(x *torch.Tensor, stages ...string) (map[string]*torch.Tensor, error)
	// FeatureDim is the width of the pooled features.
	FeatureDim() int64
	// Classifier is the state-dict prefix of the classifier ("fc." for
	// ResNets), and whether the network was built with one.
	Classifier() (prefix string, built bool)
}

// builders make every architecture the zoo has, by name.
var builders = map[string]func(name string, numClasses int64) (Network, error){}

func init() {
	for name := range archs {
		builders[name] = func(name string, numClasses int64) (Network, error) { return New(name, numClasses) }
	}
}

// Networks returns the names of the architectures Build makes, sorted.
func Networks() []string { return slices.Sorted(maps.Keys(builders)) }

// Build makes the architecture called name with a classifier of
// numClasses outputs (none for 0), initialised as torchvision initialises
// it. The caller owns the network's native memory (nn.Free).
func Build(name string, numClasses int64) (Network, error) {
	b, ok := builders[name]
	if !ok {
		return nil, fmt.Errorf("models: unknown architecture %q (known: %v)", name, Networks())
	}
	return b(name, numClasses)
}

var _ Network = (*ResNet)(nil)

// ArchName returns the architecture's name.
func (m *ResNet) ArchName() string { return m.Arch.Name }

// StageNames returns Stages.
func (m *ResNet) StageNames() []string { return Stages }

// Classifier returns "fc." and whether FC was built.
func (m *ResNet) Classifier() (string, bool) { return "fc.", m.FC != nil }
