package nn

import (
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
)

// MultiheadAttention is torch.nn.MultiheadAttention as a vision
// transformer's encoder uses it: self-attention (query, key and value are
// the input) over batch-first (N, L, E) sequences, without mask, key or
// value bias. Its state-dict keys are PyTorch's: "in_proj_weight" (3E, E),
// "in_proj_bias" (3E) and the Linear "out_proj". Attention weights are
// dropped with probability Dropout in training mode.
type MultiheadAttention struct {
	ModuleBase
	Embed, Heads int64
	Dropout      float64
	OutProj      *Linear
}

// NewMultiheadAttention makes an attention layer of embed dimensions
// split over heads, initialised as PyTorch's: Xavier-uniform input
// projection, zero biases, out_proj's weight as a Linear's.
func NewMultiheadAttention(embed, heads int64, dropout float64) (*MultiheadAttention, error) {
	if embed <= 0 || heads <= 0 || embed%heads != 0 {
		return nil, fmt.Errorf("nn: MultiheadAttention: embed_dim %d must be a positive multiple of num_heads %d", embed, heads)
	}
	if dropout < 0 || dropout > 1 {
		return nil, fmt.Errorf("nn: MultiheadAttention: dropout must be in [0, 1], got %v", dropout)
	}
	m := &MultiheadAttention{ModuleBase: ModuleBase{training: true}, Embed: embed, Heads: heads, Dropout: dropout}
	w, err := torch.Empty([]int64{3 * embed, embed})
	if err != nil {
		return nil, err
	}
	b, err := torch.Empty([]int64{3 * embed})
	if err != nil {
		return nil, err
	}
	// PyTorch makes out_proj (drawing its default initialisation) before
	// it draws the input projection.
	if m.OutProj, err = NewLinear(embed, embed, true); err != nil {
		return nil, err
	}
	if err := XavierUniform_(w); err != nil {
		return nil, err
	}
	if err := torch.NoGrad(func() error {
		if err := b.Zero_(); err != nil {
			return err
		}
		return m.OutProj.Parameter("bias").Zero_()
	}); err != nil {
		return nil, err
	}
	if err := m.RegisterParameter("in_proj_weight", w); err != nil {
		return nil, err
	}
	if err := m.RegisterParameter("in_proj_bias", b); err != nil {
		return nil, err
	}
	return m, m.RegisterModule("out_proj", m.OutProj)
}

// Forward attends x (N, L, E) to itself and returns (N, L, E), computed
// as torch.nn.functional.multi_head_attention_forward does.
func (m *MultiheadAttention) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	shape := x.Shape()
	if len(shape) != 3 || shape[2] != m.Embed {
		return nil, fmt.Errorf("nn: MultiheadAttention: expected (N, L, %d), got %v", m.Embed, shape)
	}
	n, l, e, h := shape[0], shape[1], m.Embed, m.Heads
	hd := e / h
	seq, err := x.Transpose(0, 1)
	if err != nil {
		return nil, err
	}
	qkv, err := torch.Linear(seq, m.Parameter("in_proj_weight"), m.Parameter("in_proj_bias"))
	if err != nil {
		return nil, err
	}
	parts, err := qkv.Chunk(3, -1)
	if err != nil {
		return nil, err
	}
	// Each of q, k, v: (L, N, E) → (N·H, L, E/H).
	for i, p := range parts {
		if p, err = p.Contiguous(); err != nil {
			return nil, err
		}
		if p, err = p.View(l, n*h, hd); err != nil {
			return nil, err
		}
		if parts[i], err = p.Transpose(0, 1); err != nil {
			return nil, err
		}
	}
	q, err := parts[0].DivScalar(math.Sqrt(float64(hd)))
	if err != nil {
		return nil, err
	}
	kt, err := parts[1].Transpose(-2, -1)
	if err != nil {
		return nil, err
	}
	attn, err := q.Matmul(kt)
	if err != nil {
		return nil, err
	}
	if attn, err = torch.Softmax(attn, -1); err != nil {
		return nil, err
	}
	if m.training && m.Dropout > 0 {
		if attn, err = torch.Dropout(attn, m.Dropout, true); err != nil {
			return nil, err
		}
	}
	out, err := attn.Matmul(parts[2])
	if err != nil {
		return nil, err
	}
	if out, err = out.Transpose(0, 1); err != nil {
		return nil, err
	}
	if out, err = out.Contiguous(); err != nil {
		return nil, err
	}
	if out, err = out.View(l*n, e); err != nil {
		return nil, err
	}
	if out, err = m.OutProj.Forward(out); err != nil {
		return nil, err
	}
	if out, err = out.View(l, n, e); err != nil {
		return nil, err
	}
	return out.Transpose(1, 0)
}
