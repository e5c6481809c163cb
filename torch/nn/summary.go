package nn

import (
	"fmt"
	"reflect"
	"strings"
)

// ModuleSummary describes one module of a tree.
type ModuleSummary struct {
	Path     string
	Type     string
	Training bool
	// Params and Trainable count the elements of every parameter in the
	// module's subtree.
	Params, Trainable int64
}

// Summary is what a module tree costs: per module, in total, and on disk.
type Summary struct {
	Modules          []ModuleSummary
	Total, Trainable int64
	// FileBytes is the size of the module's state dict as a safetensors
	// file.
	FileBytes int64
}

// Summarize counts the parameters of m and of every module under it.
func Summarize(m Module) (Summary, error) {
	var s Summary
	err := Walk(m, func(path string, x Module) error {
		total, trainable := CountParameters(x)
		s.Modules = append(s.Modules, ModuleSummary{
			Path: path, Type: reflect.TypeOf(x).Elem().Name(), Training: x.Base().Training(),
			Params: total, Trainable: trainable,
		})
		return nil
	})
	if err != nil {
		return s, err
	}
	s.Total, s.Trainable = CountParameters(m)
	s.FileBytes, err = SafetensorsSize(StateDict(m), nil)
	return s, err
}

// Table prints a table of the modules down to depth levels below the root
// (0 for all) and the totals.
func (s Summary) Table(depth int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-32s %-18s %14s %14s  %s\n", "module", "type", "params", "trainable", "mode")
	for _, m := range s.Modules {
		if depth > 0 && m.Path != "" && strings.Count(m.Path, ".") >= depth {
			continue
		}
		path := m.Path
		if path == "" {
			path = "(model)"
		}
		mode := "eval"
		if m.Training {
			mode = "train"
		}
		fmt.Fprintf(&b, "%-32s %-18s %14s %14s  %s\n", path, m.Type, Thousands(m.Params), Thousands(m.Trainable), mode)
	}
	fmt.Fprintf(&b, "total %s parameters, %s trainable, %s frozen; %s as safetensors\n",
		Thousands(s.Total), Thousands(s.Trainable), Thousands(s.Total-s.Trainable), Bytes(s.FileBytes))
	return b.String()
}

// Thousands formats n with comma separators: 25,557,032.
func Thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// Bytes formats a size in binary units: "97.8 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
