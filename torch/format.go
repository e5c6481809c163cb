package torch

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Printing follows torch._tensor_str: four decimals, scientific notation
// when magnitudes span more than 1000× (or exceed 1e8, or fall below 1e-4),
// "1." style for integral floats, lines wrapped at 80 columns and tensors
// over 1000 elements summarised with 3 edge items. The one difference:
// a non-leaf tensor shows requires_grad=True instead of its grad_fn.
const (
	printThreshold = 1000
	printEdgeItems = 3
	printLineWidth = 80
	printPrecision = 4
)

// String formats t as PyTorch prints it, for example
// "tensor([[1., 2.],\n        [3., 4.]], dtype=torch.float64)".
func (t *Tensor) String() string {
	info, err := t.info()
	if err != nil {
		return "tensor(<" + err.Error() + ">)"
	}
	vals, err := Data[float64](t)
	if err != nil {
		return "tensor(<" + err.Error() + ">)"
	}
	var suffix []string
	if info.device.Type != DeviceCPU {
		suffix = append(suffix, fmt.Sprintf("device='%v'", info.device))
	}
	n := numel(info.shape)
	if n == 0 && len(info.shape) > 1 {
		suffix = append(suffix, "size="+formatShape(info.shape))
	}
	if info.dtype != Float32 && info.dtype != Int64 && info.dtype != Bool {
		suffix = append(suffix, "dtype=torch."+info.dtype.String())
	}
	if info.requiresGrad {
		suffix = append(suffix, "requires_grad=True")
	}
	f := newFormatter(vals, info.dtype, n > printThreshold, info.shape)
	body := "[]"
	if n > 0 || len(info.shape) == 0 {
		body = f.block(vals, info.shape, len("tensor("), n > printThreshold)
	}
	out := "tensor(" + body
	for _, s := range suffix {
		out += ", " + s
	}
	return out + ")"
}

func formatShape(shape []int64) string {
	parts := make([]string, len(shape))
	for i, s := range shape {
		parts[i] = strconv.FormatInt(s, 10)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

type formatter struct {
	dtype   DType
	intMode bool
	sciMode bool
	width   int
}

func newFormatter(vals []float64, dt DType, summarize bool, shape []int64) *formatter {
	f := &formatter{dtype: dt}
	if summarize {
		vals = summarized(vals, shape)
	}
	if dt.IsFloating() {
		f.intMode = true
		lo, hi := math.Inf(1), 0.0
		for _, v := range vals {
			if math.IsInf(v, 0) || math.IsNaN(v) || v == 0 {
				continue
			}
			a := math.Abs(v)
			lo, hi = math.Min(lo, a), math.Max(hi, a)
			if v != math.Ceil(v) {
				f.intMode = false
			}
		}
		if hi > 0 {
			if f.intMode {
				f.sciMode = hi/lo > 1000 || hi > 1e8
			} else {
				f.sciMode = hi/lo > 1000 || hi > 1e8 || lo < 1e-4
			}
		}
	}
	for _, v := range vals {
		f.width = max(f.width, len(f.raw(v)))
	}
	return f
}

// summarized returns the values that a summarised print shows.
func summarized(vals []float64, shape []int64) []float64 {
	if len(shape) == 0 {
		return vals
	}
	var out []float64
	stride := int64(1)
	for _, s := range shape[1:] {
		stride *= s
	}
	for i := int64(0); i < shape[0]; i++ {
		if shape[0] > 2*printEdgeItems && i >= printEdgeItems && i < shape[0]-printEdgeItems {
			continue
		}
		out = append(out, summarized(vals[i*stride:(i+1)*stride], shape[1:])...)
	}
	return out
}

func (f *formatter) raw(v float64) string {
	switch {
	case f.dtype == Bool:
		if v != 0 {
			return "True"
		}
		return "False"
	case !f.dtype.IsFloating():
		return strconv.FormatInt(int64(v), 10)
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	case f.sciMode:
		return strconv.FormatFloat(v, 'e', printPrecision, 64)
	case f.intMode:
		return strconv.FormatFloat(v, 'f', 0, 64) + "."
	}
	return strconv.FormatFloat(v, 'f', printPrecision, 64)
}

func (f *formatter) cell(v float64) string {
	s := f.raw(v)
	return strings.Repeat(" ", f.width-len(s)) + s
}

func (f *formatter) block(vals []float64, shape []int64, indent int, summarize bool) string {
	if len(shape) == 0 {
		return f.cell(vals[0])
	}
	n := shape[0]
	stride := int64(1)
	for _, s := range shape[1:] {
		stride *= s
	}
	skip := summarize && n > 2*printEdgeItems
	if len(shape) == 1 {
		perLine := max(1, (printLineWidth-indent)/(f.width+2))
		var cells []string
		for i := int64(0); i < n; i++ {
			if skip && i == printEdgeItems {
				cells = append(cells, " ...")
				i = n - printEdgeItems - 1
				continue
			}
			cells = append(cells, f.cell(vals[i]))
		}
		var lines []string
		for i := 0; i < len(cells); i += perLine {
			lines = append(lines, strings.Join(cells[i:min(i+perLine, len(cells))], ", "))
		}
		return "[" + strings.Join(lines, ",\n"+strings.Repeat(" ", indent+1)) + "]"
	}
	var rows []string
	for i := int64(0); i < n; i++ {
		if skip && i == printEdgeItems {
			rows = append(rows, "...")
			i = n - printEdgeItems - 1
			continue
		}
		rows = append(rows, f.block(vals[i*stride:(i+1)*stride], shape[1:], indent+1, summarize))
	}
	sep := "," + strings.Repeat("\n", len(shape)-1) + strings.Repeat(" ", indent+1)
	return "[" + strings.Join(rows, sep) + "]"
}
