package nn

import (
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
)

// ShiftedWindowAttention is torchvision's swin_transformer.
// ShiftedWindowAttention: multi-head self-attention within non-overlapping
// windows of a (B, H, W, C) map, with a learned bias per relative position
// and head, the windows optionally shifted (cyclically, with a mask that
// keeps pixels from attending across the wrap). Keys:
// "relative_position_bias_table" ((2w₀-1)(2w₁-1), heads), the buffer
// "relative_position_index" and the Linears "qkv" and "proj".
type ShiftedWindowAttention struct {
	ModuleBase
	Window, Shift [2]int64
	Heads         int64
	QKV, Proj     *Linear
}

// NewShiftedWindowAttention makes a window attention over dim channels,
// initialised as torchvision's: the Linears' defaults, then the bias
// table from a normal of std 0.02 truncated to [-2, 2].
func NewShiftedWindowAttention(dim int64, window, shift [2]int64, heads int64) (*ShiftedWindowAttention, error) {
	if dim <= 0 || heads <= 0 || dim%heads != 0 {
		return nil, fmt.Errorf("nn: ShiftedWindowAttention: dim %d must be a positive multiple of num_heads %d", dim, heads)
	}
	if window[0] <= 0 || window[1] <= 0 || shift[0] < 0 || shift[1] < 0 {
		return nil, fmt.Errorf("nn: ShiftedWindowAttention: window %v must be positive, shift %v not negative", window, shift)
	}
	m := &ShiftedWindowAttention{ModuleBase: ModuleBase{training: true}, Window: window, Shift: shift, Heads: heads}
	var err error
	if m.QKV, err = NewLinear(dim, 3*dim, true); err != nil {
		return nil, err
	}
	if m.Proj, err = NewLinear(dim, dim, true); err != nil {
		return nil, err
	}
	table, err := torch.Zeros([]int64{(2*window[0] - 1) * (2*window[1] - 1), heads})
	if err != nil {
		return nil, err
	}
	if err := TruncNormal_(table, 0, 0.02, -2, 2); err != nil {
		return nil, err
	}
	index, err := relativePositionIndex(window)
	if err != nil {
		return nil, err
	}
	if err := m.RegisterParameter("relative_position_bias_table", table); err != nil {
		return nil, err
	}
	if err := m.RegisterBuffer("relative_position_index", index); err != nil {
		return nil, err
	}
	if err := m.RegisterModule("qkv", m.QKV); err != nil {
		return nil, err
	}
	return m, m.RegisterModule("proj", m.Proj)
}

// relativePositionIndex is, for each pair of positions (i, j) of a window
// in row-major order, the row of the bias table for their offset.
func relativePositionIndex(window [2]int64) (*torch.Tensor, error) {
	n := window[0] * window[1]
	index := make([]int64, 0, n*n)
	for i := range n {
		for j := range n {
			dh := i/window[1] - j/window[1] + window[0] - 1
			dw := i%window[1] - j%window[1] + window[1] - 1
			index = append(index, dh*(2*window[1]-1)+dw)
		}
	}
	return torch.FromSlice(index, n*n)
}

// positionBias is the table's bias for every pair of a window's positions
// and every head: (1, heads, n, n).
func (m *ShiftedWindowAttention) positionBias() (*torch.Tensor, error) {
	n := m.Window[0] * m.Window[1]
	b, err := m.Parameter("relative_position_bias_table").Index(m.Buffer("relative_position_index"))
	if err != nil {
		return nil, err
	}
	if b, err = b.View(n, n, -1); err != nil {
		return nil, err
	}
	if b, err = b.Permute(2, 0, 1); err != nil {
		return nil, err
	}
	if b, err = b.Contiguous(); err != nil {
		return nil, err
	}
	return b.Unsqueeze(0)
}

// shiftMask is the mask added to the attention of shifted windows over a
// padded map of ph×pw: -100 between positions of one window that come from
// different regions of the unshifted map, 0 elsewhere; (1, windows, 1, n, n).
func shiftMask(ph, pw int64, window, shift [2]int64) (*torch.Tensor, error) {
	region := func(r, size, w, s int64) int64 {
		switch {
		case s == 0: // torchvision's slices then cover the whole side
			return 0
		case r < size-w:
			return 0
		case r < size-s:
			return 1
		}
		return 2
	}
	n := window[0] * window[1]
	nh, nw := ph/window[0], pw/window[1]
	mask := make([]float32, 0, nh*nw*n*n)
	ids := make([]int64, n)
	for wh := range nh {
		for ww := range nw {
			for p := range n {
				r, c := wh*window[0]+p/window[1], ww*window[1]+p%window[1]
				ids[p] = 3*region(r, ph, window[0], shift[0]) + region(c, pw, window[1], shift[1])
			}
			for i := range n {
				for j := range n {
					v := float32(0)
					if ids[i] != ids[j] {
						v = -100
					}
					mask = append(mask, v)
				}
			}
		}
	}
	return torch.FromSlice(mask, 1, nh*nw, 1, n, n)
}

// Forward attends within the windows of x (B, H, W, C), padded at the
// bottom and right to whole windows, and returns (B, H, W, C), computed
// as torchvision's shifted_window_attention.
func (m *ShiftedWindowAttention) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	shape := x.Shape()
	if len(shape) != 4 {
		return nil, fmt.Errorf("nn: ShiftedWindowAttention: expected (B, H, W, C), got %v", shape)
	}
	b, h, w, c := shape[0], shape[1], shape[2], shape[3]
	win := m.Window
	padB, padR := (win[0]-h%win[0])%win[0], (win[1]-w%win[1])%win[1]
	ph, pw := h+padB, w+padR
	shift := m.Shift
	if win[0] >= ph {
		shift[0] = 0
	}
	if win[1] >= pw {
		shift[1] = 0
	}
	shifted := shift[0]+shift[1] > 0
	xs, err := first(torch.CallOp("aten::constant_pad_nd", "", x, []int64{0, 0, 0, padR, 0, padB}, 0.0))
	if err != nil {
		return nil, err
	}
	if shifted {
		if xs, err = first(torch.CallOp("aten::roll", "", xs, []int64{-shift[0], -shift[1]}, []int64{1, 2})); err != nil {
			return nil, err
		}
	}
	nh, nw := ph/win[0], pw/win[1]
	windows, n := nh*nw, win[0]*win[1]
	if xs, err = xs.View(b, nh, win[0], nw, win[1], c); err != nil {
		return nil, err
	}
	if xs, err = xs.Permute(0, 1, 3, 2, 4, 5); err != nil {
		return nil, err
	}
	if xs, err = xs.Reshape(b*windows, n, c); err != nil {
		return nil, err
	}
	qkv, err := m.QKV.Forward(xs)
	if err != nil {
		return nil, err
	}
	if qkv, err = qkv.Reshape(b*windows, n, 3, m.Heads, c/m.Heads); err != nil {
		return nil, err
	}
	if qkv, err = qkv.Permute(2, 0, 3, 1, 4); err != nil {
		return nil, err
	}
	var qkvs [3]*torch.Tensor
	for i := range qkvs {
		if qkvs[i], err = qkv.Select(0, int64(i)); err != nil {
			return nil, err
		}
	}
	q, err := qkvs[0].MulScalar(math.Pow(float64(c/m.Heads), -0.5))
	if err != nil {
		return nil, err
	}
	kt, err := qkvs[1].Transpose(-2, -1)
	if err != nil {
		return nil, err
	}
	attn, err := q.Matmul(kt)
	if err != nil {
		return nil, err
	}
	bias, err := m.positionBias()
	if err != nil {
		return nil, err
	}
	if attn, err = attn.Add(bias); err != nil {
		return nil, err
	}
	if shifted {
		mask, err := shiftMask(ph, pw, win, shift)
		if err != nil {
			return nil, err
		}
		if attn, err = attn.View(b, windows, m.Heads, n, n); err != nil {
			return nil, err
		}
		if attn, err = attn.Add(mask); err != nil {
			return nil, err
		}
		if attn, err = attn.View(-1, m.Heads, n, n); err != nil {
			return nil, err
		}
	}
	if attn, err = torch.Softmax(attn, -1); err != nil {
		return nil, err
	}
	out, err := attn.Matmul(qkvs[2])
	if err != nil {
		return nil, err
	}
	if out, err = out.Transpose(1, 2); err != nil {
		return nil, err
	}
	if out, err = out.Reshape(b*windows, n, c); err != nil {
		return nil, err
	}
	if out, err = m.Proj.Forward(out); err != nil {
		return nil, err
	}
	if out, err = out.View(b, nh, nw, win[0], win[1], c); err != nil {
		return nil, err
	}
	if out, err = out.Permute(0, 1, 3, 2, 4, 5); err != nil {
		return nil, err
	}
	if out, err = out.Reshape(b, ph, pw, c); err != nil {
		return nil, err
	}
	if shifted {
		if out, err = first(torch.CallOp("aten::roll", "", out, []int64{shift[0], shift[1]}, []int64{1, 2})); err != nil {
			return nil, err
		}
	}
	if out, err = out.Narrow(1, 0, h); err != nil {
		return nil, err
	}
	if out, err = out.Narrow(2, 0, w); err != nil {
		return nil, err
	}
	return out.Contiguous()
}

// PatchMerging is torchvision's swin_transformer.PatchMerging: it halves
// the height and width of a (…, H, W, C) map (padding odd sides with
// zeros) by concatenating each 2×2 neighbourhood's channels, then
// normalises ("norm", LayerNorm of 4C) and projects to 2C ("reduction",
// a Linear without bias).
type PatchMerging struct {
	ModuleBase
	Reduction *Linear
	Norm      *LayerNorm
}

// NewPatchMerging makes a patch merging of dim channels whose LayerNorm
// has eps.
func NewPatchMerging(dim int64, eps float64) (*PatchMerging, error) {
	m := &PatchMerging{ModuleBase: ModuleBase{training: true}}
	var err error
	if m.Reduction, err = NewLinear(4*dim, 2*dim, false); err != nil {
		return nil, err
	}
	if m.Norm, err = NewLayerNorm([]int64{4 * dim}, eps, true); err != nil {
		return nil, err
	}
	if err := m.RegisterModule("reduction", m.Reduction); err != nil {
		return nil, err
	}
	return m, m.RegisterModule("norm", m.Norm)
}

// Forward merges x (…, H, W, C) into (…, ⌈H/2⌉, ⌈W/2⌉, 2C).
func (m *PatchMerging) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	shape := x.Shape()
	if len(shape) < 3 {
		return nil, fmt.Errorf("nn: PatchMerging: expected (…, H, W, C), got %v", shape)
	}
	h, w := shape[len(shape)-3], shape[len(shape)-2]
	x, err := first(torch.CallOp("aten::constant_pad_nd", "", x, []int64{0, 0, 0, w % 2, 0, h % 2}, 0.0))
	if err != nil {
		return nil, err
	}
	hd, wd := int64(len(shape)-3), int64(len(shape)-2)
	var parts []*torch.Tensor
	// torchvision's order: (0,0), (1,0), (0,1), (1,1) as (row, column).
	for _, o := range [][2]int64{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
		p, err := first(torch.CallOp("aten::slice", "Tensor", x, hd, o[0], nil, int64(2)))
		if err != nil {
			return nil, err
		}
		if p, err = first(torch.CallOp("aten::slice", "Tensor", p, wd, o[1], nil, int64(2))); err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	if x, err = torch.Cat(parts, -1); err != nil {
		return nil, err
	}
	if x, err = m.Norm.Forward(x); err != nil {
		return nil, err
	}
	return m.Reduction.Forward(x)
}

// first returns the first tensor of an operator's results.
func first(ts []*torch.Tensor, err error) (*torch.Tensor, error) {
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("nn: operator returned no tensor")
	}
	return ts[0], nil
}
