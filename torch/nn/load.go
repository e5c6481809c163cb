package nn

import (
	"fmt"
	"slices"
	"strings"

	"github.com/finetune-go/finetune/torch"
)

// ShapeMismatch is a state-dict entry whose shape differs from the
// module's.
type ShapeMismatch struct {
	Key        string
	Want, Have []int64
}

// LoadReport says how a state dict matched a module.
type LoadReport struct {
	Loaded     []string
	Missing    []string // in the module, not in the file
	Unexpected []string // in the file, not in the module
	Mismatched []ShapeMismatch
}

// Clean reports whether every key matched with its shape.
func (r LoadReport) Clean() bool {
	return len(r.Missing) == 0 && len(r.Unexpected) == 0 && len(r.Mismatched) == 0
}

// String lists the problems by name, one kind per line.
func (r LoadReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tensors loaded", len(r.Loaded))
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "; missing: %s", strings.Join(r.Missing, ", "))
	}
	if len(r.Unexpected) > 0 {
		fmt.Fprintf(&b, "; unexpected: %s", strings.Join(r.Unexpected, ", "))
	}
	for _, m := range r.Mismatched {
		fmt.Fprintf(&b, "; %s: shape %v in file, %v in model", m.Key, m.Have, m.Want)
	}
	return b.String()
}

// LoadOptions relax LoadStateDict's strictness. The zero value is strict,
// like PyTorch's load_state_dict(strict=True).
type LoadOptions struct {
	AllowMissing    bool
	AllowUnexpected bool
	// SkipMismatched leaves entries whose shape differs at their current
	// value (a new classifier, say) instead of failing.
	SkipMismatched bool
	// SkipMismatchedIf, when set, limits SkipMismatched to the keys it
	// accepts; other mismatches fail the load.
	SkipMismatchedIf func(key string) bool
}

func (o LoadOptions) skips(key string) bool {
	return o.SkipMismatched && (o.SkipMismatchedIf == nil || o.SkipMismatchedIf(key))
}

// LoadStateDict copies the values of entries into m's parameters and
// buffers with the same keys, converting dtype as needed. It returns what
// matched and an error naming every problem that opts do not allow; on
// such an error nothing is copied.
func LoadStateDict(m Module, entries []Named[*torch.Tensor], opts LoadOptions) (LoadReport, error) {
	var r LoadReport
	own := StateDict(m)
	given := make(map[string]*torch.Tensor, len(entries))
	for _, e := range entries {
		given[e.Name] = e.Value
	}
	type pair struct{ dst, src *torch.Tensor }
	var copies []pair
	known := make(map[string]bool, len(own))
	for _, o := range own {
		known[o.Name] = true
		src, ok := given[o.Name]
		if !ok {
			r.Missing = append(r.Missing, o.Name)
			continue
		}
		want, have := o.Value.Shape(), src.Shape()
		if !slices.Equal(want, have) {
			r.Mismatched = append(r.Mismatched, ShapeMismatch{Key: o.Name, Want: want, Have: have})
			continue
		}
		copies = append(copies, pair{o.Value, src})
		r.Loaded = append(r.Loaded, o.Name)
	}
	for _, e := range entries {
		if !known[e.Name] {
			r.Unexpected = append(r.Unexpected, e.Name)
		}
	}
	var problems []string
	if len(r.Missing) > 0 && !opts.AllowMissing {
		problems = append(problems, "missing keys "+strings.Join(r.Missing, ", "))
	}
	if len(r.Unexpected) > 0 && !opts.AllowUnexpected {
		problems = append(problems, "unexpected keys "+strings.Join(r.Unexpected, ", "))
	}
	for _, mm := range r.Mismatched {
		if !opts.skips(mm.Key) {
			problems = append(problems, fmt.Sprintf("%s has shape %v in the file but %v in the model", mm.Key, mm.Have, mm.Want))
		}
	}
	if len(problems) > 0 {
		return r, fmt.Errorf("nn: state dict does not fit the model: %s", strings.Join(problems, "; "))
	}
	err := torch.NoGrad(func() error {
		for i, c := range copies {
			if err := c.dst.Copy_(c.src); err != nil {
				return fmt.Errorf("nn: loading %s: %w", r.Loaded[i], err)
			}
		}
		return nil
	})
	return r, err
}
