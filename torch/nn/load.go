package nn

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/finetune-go/finetune/internal/printable"
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
	// Stripped is the prefix (one of CommonPrefixes) removed from every
	// key of the file to match the module's, or "".
	Stripped string
}

// CommonPrefixes are the prefixes other tools put before a model's keys:
// DataParallel's "module.", and wrappers that keep the network as a
// field. LoadStateDict removes one when every key of the file has it and
// only then do the keys match.
var CommonPrefixes = []string{"module.", "model.", "backbone."}

// maxListed is how many keys a message names before it gives a count: a
// file of another model would otherwise list hundreds.
const maxListed = 5

// keyList names up to maxListed of keys, escaped for a terminal, and
// counts the rest.
func keyList(keys []string) string {
	if len(keys) <= maxListed {
		return strings.Join(printable.Names(keys), ", ")
	}
	return fmt.Sprintf("%s and %d more (%d in all)", strings.Join(printable.Names(keys[:maxListed]), ", "), len(keys)-maxListed, len(keys))
}

// Clean reports whether every key matched with its shape.
func (r LoadReport) Clean() bool {
	return len(r.Missing) == 0 && len(r.Unexpected) == 0 && len(r.Mismatched) == 0
}

// String lists the problems by name, one kind per line.
func (r LoadReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tensors loaded", len(r.Loaded))
	if r.Stripped != "" {
		fmt.Fprintf(&b, " (prefix %q removed from the file's keys)", r.Stripped)
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "; missing: %s", keyList(r.Missing))
	}
	if len(r.Unexpected) > 0 {
		fmt.Fprintf(&b, "; unexpected: %s", keyList(r.Unexpected))
	}
	for _, m := range r.Mismatched {
		fmt.Fprintf(&b, "; %s: shape %v in file, %v in model", printable.Name(m.Key), m.Have, m.Want)
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
// such an error nothing is copied. Keys that match only without one of
// CommonPrefixes are matched so (see LoadReport.Stripped). A floating
// tensor with a NaN or an infinity is an error naming it: such weights
// would only give NaN predictions.
func LoadStateDict(m Module, entries []Named[*torch.Tensor], opts LoadOptions) (LoadReport, error) {
	var r LoadReport
	own := StateDict(m)
	entries, r.Stripped = stripPrefix(own, entries)
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
		problems = append(problems, "missing keys "+keyList(r.Missing))
	}
	if len(r.Unexpected) > 0 && !opts.AllowUnexpected {
		problems = append(problems, "unexpected keys "+keyList(r.Unexpected))
	}
	var shapes int
	for _, mm := range r.Mismatched {
		if !opts.skips(mm.Key) {
			if shapes++; shapes <= maxListed {
				problems = append(problems, fmt.Sprintf("%s has shape %v in the file but %v in the model", printable.Name(mm.Key), mm.Have, mm.Want))
			}
		}
	}
	if shapes > maxListed {
		problems = append(problems, fmt.Sprintf("%d more keys of another shape (%d in all)", shapes-maxListed, shapes))
	}
	if len(problems) > 0 {
		return r, fmt.Errorf("nn: state dict does not fit the model: %s", strings.Join(problems, "; "))
	}
	for i, c := range copies {
		if err := checkFinite(c.src); err != nil {
			return r, fmt.Errorf("nn: %s: %w", printable.Name(r.Loaded[i]), err)
		}
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

// stripPrefix returns entries without the one of CommonPrefixes that all
// their keys share, and that prefix, when none of the keys matches own
// as it is and some do without it; else entries as they are.
func stripPrefix(own, entries []Named[*torch.Tensor]) ([]Named[*torch.Tensor], string) {
	if len(entries) == 0 {
		return entries, ""
	}
	known := make(map[string]bool, len(own))
	for _, o := range own {
		known[o.Name] = true
	}
	for _, e := range entries {
		if known[e.Name] {
			return entries, ""
		}
	}
	for _, p := range CommonPrefixes {
		out := make([]Named[*torch.Tensor], 0, len(entries))
		matched := false
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name, p)
			if !ok {
				break
			}
			matched = matched || known[name]
			out = append(out, Named[*torch.Tensor]{name, e.Value})
		}
		if len(out) == len(entries) && matched {
			return out, p
		}
	}
	return entries, ""
}

// checkFinite returns an error when the floating tensor t holds a NaN or
// an infinity.
func checkFinite(t *torch.Tensor) error {
	if !t.DType().IsFloating() || t.Numel() == 0 {
		return nil
	}
	f, err := t.IsFinite()
	if err != nil {
		return err
	}
	defer f.Free()
	ok, err := f.All()
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("holds NaN or infinite values: the file is corrupt or comes from a training run that diverged")
	}
	return nil
}
