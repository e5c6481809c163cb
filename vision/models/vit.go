package models

import (
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// vitArch is a vision transformer as torchvision 0.14 builds it.
type vitArch struct {
	patch, layers, heads, hidden, mlp int64
}

var vits = map[string]vitArch{
	"vit_b_16": {patch: 16, layers: 12, heads: 12, hidden: 768, mlp: 3072},
}

// ViTImageSize is the side of the images a ViT takes: its position
// embedding has one entry per 16×16 patch of a 224×224 image (and one for
// the class token). Other sizes would need the embedding interpolated,
// which torchvision does only when loading weights into a model built for
// another size; the zoo does not.
const ViTImageSize = 224

func init() { registerFamily(vits, NewViT) }

// ViT is torchvision's VisionTransformer, with the same module tree,
// state-dict keys and initialisation.
//
// Its stages are "embed", the patch projection (conv_proj) with the class
// token prepended and the position embedding added; "block1" to
// "block12", the encoder blocks, each a sequence of (N, 197, 768) tokens;
// and "pool", the encoder's final LayerNorm and the class token alone
// (N, 768): the features the head sees. As a freeze point, "blockK" means
// the patch projection, class token, position embedding and the first K
// blocks learn nothing; the blocks of a ViT are all alike, so any K is a
// sensible point, and the final LayerNorm trains with the head unless the
// whole backbone is frozen. The class token and position embedding are
// parameters of the model and of its encoder, not of a module of their
// own: a freeze at "embed" or later covers them.
type ViT struct {
	nn.ModuleBase
	Name       string
	NumClasses int64
	arch       vitArch
	ConvProj   *nn.Conv2d
	Encoder    *ViTEncoder
	// Heads is torchvision's "heads", holding the Linear "head" when built
	// with classes.
	Heads *nn.ModuleBase
	Head  *nn.Linear
}

var _ Network = (*ViT)(nil)

// ViTEncoder is the encoder of a ViT: "pos_embedding", the blocks under
// "layers" ("encoder_layer_0", …) and the final LayerNorm "ln".
type ViTEncoder struct {
	nn.ModuleBase
	Dropout *nn.Dropout
	Blocks  []*EncoderBlock
	LN      *nn.LayerNorm
}

// EncoderBlock is a pre-norm transformer block: x + attention(ln_1(x)),
// then that plus mlp(ln_2(·)), the MLP a Linear ×4, GELU and a Linear.
type EncoderBlock struct {
	nn.ModuleBase
	LN1, LN2  *nn.LayerNorm
	Attention *nn.MultiheadAttention
	Dropout   *nn.Dropout
	MLP       *nn.Sequential
}

// NewViT builds the vision transformer called name ("vit_b_16") for
// ViTImageSize images with a head of numClasses outputs, initialised as
// torchvision initialises it (the head at zero): with the same
// torch.ManualSeed the weights equal torchvision's. With numClasses 0 it
// has no head ("heads" is empty) and Forward is not available.
func NewViT(name string, numClasses int64) (*ViT, error) {
	a, err := lookup(vits, name, numClasses)
	if err != nil {
		return nil, err
	}
	s := torch.NewScope()
	defer s.Close()
	mk := &maker{}
	m := &ViT{Name: name, NumClasses: numClasses, arch: a}
	m.SetTraining(true)
	m.ConvProj = mk.conv(nn.Conv2dConfig{InChannels: 3, OutChannels: a.hidden, Kernel: [2]int64{a.patch, a.patch}, Stride: [2]int64{a.patch, a.patch}, Bias: true})
	token, err := torch.Zeros([]int64{1, 1, a.hidden})
	mk.param(m, "class_token", token, err)
	seq := (ViTImageSize/a.patch)*(ViTImageSize/a.patch) + 1
	m.Encoder = newViTEncoder(mk, a, seq)
	m.Heads = &nn.ModuleBase{}
	m.Heads.SetTraining(true)
	if numClasses > 0 {
		m.Head = mk.linear(a.hidden, numClasses)
		mk.register(m.Heads, child("head", m.Head))
	}
	mk.register(m, child("conv_proj", m.ConvProj), child("encoder", m.Encoder), child("heads", m.Heads))
	if mk.err != nil {
		return nil, fmt.Errorf("models: %s: %w", name, mk.err)
	}
	err = torch.NoGrad(func() error {
		fanIn := 3 * a.patch * a.patch
		if err := nn.TruncNormal_(m.ConvProj.Parameter("weight"), 0, math.Sqrt(1/float64(fanIn)), -2, 2); err != nil {
			return err
		}
		if err := m.ConvProj.Parameter("bias").Zero_(); err != nil {
			return err
		}
		if m.Head == nil {
			return nil
		}
		if err := m.Head.Parameter("weight").Zero_(); err != nil {
			return err
		}
		return m.Head.Parameter("bias").Zero_()
	})
	if err != nil {
		return nil, fmt.Errorf("models: %s: init: %w", name, err)
	}
	return m, nil
}

func newViTEncoder(mk *maker, a vitArch, seq int64) *ViTEncoder {
	e := &ViTEncoder{}
	e.SetTraining(true)
	pos, err := torch.Empty([]int64{1, seq, a.hidden})
	if err == nil {
		err = torch.NoGrad(func() error { return pos.Normal_(0, 0.02, nil) })
	}
	mk.param(e, "pos_embedding", pos, err)
	e.Dropout = mk.dropout(0)
	layers := &nn.ModuleBase{}
	layers.SetTraining(true)
	for i := range a.layers {
		b := newEncoderBlock(mk, a)
		e.Blocks = append(e.Blocks, b)
		mk.register(layers, child(fmt.Sprintf("encoder_layer_%d", i), b))
	}
	e.LN = mk.layerNorm(a.hidden, 1e-6)
	mk.register(e, child("dropout", e.Dropout), child("layers", layers), child("ln", e.LN))
	return e
}

func newEncoderBlock(mk *maker, a vitArch) *EncoderBlock {
	b := &EncoderBlock{}
	b.SetTraining(true)
	b.LN1 = mk.layerNorm(a.hidden, 1e-6)
	var err error
	b.Attention, err = nn.NewMultiheadAttention(a.hidden, a.heads, 0)
	mk.fail(err)
	b.Dropout = mk.dropout(0)
	b.LN2 = mk.layerNorm(a.hidden, 1e-6)
	b.MLP = mk.mlp(a.hidden, a.mlp)
	mk.register(b, child("ln_1", b.LN1), child("self_attention", b.Attention), child("dropout", b.Dropout),
		child("ln_2", b.LN2), child("mlp", b.MLP))
	return b
}

// Forward returns x + a + mlp(ln_2(x + a)), a = dropout(attention(ln_1(x))),
// for tokens x (N, L, E).
func (b *EncoderBlock) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	h, err := b.LN1.Forward(x)
	if err != nil {
		return nil, err
	}
	if h, err = b.Attention.Forward(h); err != nil {
		return nil, err
	}
	if h, err = b.Dropout.Forward(h); err != nil {
		return nil, err
	}
	if h, err = h.Add(x); err != nil {
		return nil, err
	}
	y, err := b.LN2.Forward(h)
	if err != nil {
		return nil, err
	}
	if y, err = b.MLP.Forward(y); err != nil {
		return nil, err
	}
	return h.Add(y)
}

// embed is the "embed" stage: patches projected to tokens (N, 196, E),
// the class token prepended, the position embedding added.
func (m *ViT) embed(x *torch.Tensor) (*torch.Tensor, error) {
	shape := x.Shape()
	if len(shape) != 4 || shape[2] != ViTImageSize || shape[3] != ViTImageSize {
		return nil, fmt.Errorf("expected images (N, 3, %d, %d), got %v", ViTImageSize, ViTImageSize, shape)
	}
	h, err := m.ConvProj.Forward(x)
	if err != nil {
		return nil, err
	}
	n, side := shape[0], int64(ViTImageSize)/m.arch.patch
	if h, err = h.Reshape(n, m.arch.hidden, side*side); err != nil {
		return nil, err
	}
	if h, err = h.Permute(0, 2, 1); err != nil {
		return nil, err
	}
	token, err := m.Parameter("class_token").Expand(n, -1, -1)
	if err != nil {
		return nil, err
	}
	if h, err = torch.Cat([]*torch.Tensor{token, h}, 1); err != nil {
		return nil, err
	}
	if h, err = h.Add(m.Encoder.Parameter("pos_embedding")); err != nil {
		return nil, err
	}
	return m.Encoder.Dropout.Forward(h)
}

// pool is the "pool" stage: the final LayerNorm, then the class token.
func (m *ViT) pool(x *torch.Tensor) (*torch.Tensor, error) {
	h, err := m.Encoder.LN.Forward(x)
	if err != nil {
		return nil, err
	}
	return h.Select(1, 0)
}

func (m *ViT) stages() []stage {
	out := []stage{{"embed", m.embed}}
	for i, b := range m.Encoder.Blocks {
		out = append(out, stage{fmt.Sprintf("block%d", i+1), b.Forward})
	}
	return append(out, stage{"pool", m.pool})
}

// ArchName returns the architecture's name.
func (m *ViT) ArchName() string { return m.Name }

// StageNames returns "embed", "block1"…"block12" and "pool".
func (m *ViT) StageNames() []string { return stageNames(m.stages()) }

// FeatureDim returns the width of the class token: 768 for vit_b_16.
func (m *ViT) FeatureDim() int64 { return m.arch.hidden }

// Classifier returns "heads.head." and whether the head was built.
func (m *ViT) Classifier() (string, bool) { return "heads.head.", m.Head != nil }

// Features runs the network up to the last of the named stages (see
// ViT) and returns the output of each requested one.
func (m *ViT) Features(x *torch.Tensor, stages ...string) (map[string]*torch.Tensor, error) {
	return runStages(m.Name, x, m.stages(), stages)
}

// Forward returns the logits for images x (N, 3, 224, 224).
func (m *ViT) Forward(x *torch.Tensor) (*torch.Tensor, error) { return classify(m, x, m.Head) }
