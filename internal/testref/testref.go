// Package testref runs the reference implementation, Debian's PyTorch, for
// tests: fixture scripts under scripts/fixtures write JSON that tests
// decode and compare against. It is never used outside tests.
package testref

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/stretchr/testify/require"
)

// Python is Debian's interpreter, which has python3-torch 1.13 and
// python3-torchvision 0.14: the same libtorch the bindings link. Another
// python3 may come first on PATH.
const Python = "/usr/bin/python3"

// Root returns the repository's root folder.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Script returns the path of a fixture script.
func Script(name string) string { return filepath.Join(Root(), "scripts", "fixtures", name) }

type cached struct {
	once sync.Once
	raw  []byte
	err  error
}

var runs sync.Map // script name -> *cached

// JSON runs scripts/fixtures/<script> once per test binary with an output
// file as its argument and decodes that file into v.
func JSON(t testing.TB, script string, v any) {
	t.Helper()
	c, _ := runs.LoadOrStore(script, &cached{})
	entry := c.(*cached)
	entry.once.Do(func() {
		dir, err := os.MkdirTemp("", "testref")
		if err != nil {
			entry.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "out.json")
		msg, err := exec.Command(Python, Script(script), out).CombinedOutput()
		if err != nil {
			entry.err = fmt.Errorf("%s %s: %w\n%s", Python, script, err, msg)
			return
		}
		entry.raw, entry.err = os.ReadFile(out)
	})
	require.NoError(t, entry.err, "making reference values with Debian's python3-torch")
	require.NoError(t, json.Unmarshal(entry.raw, v))
}

// Tensor is a tensor as the fixture scripts write it.
type Tensor struct {
	Shape []int64   `json:"shape"`
	DType string    `json:"dtype"`
	Data  []float64 `json:"data"`
}

// Torch makes the tensor.
func (f *Tensor) Torch(t testing.TB) *torch.Tensor {
	t.Helper()
	switch f.DType {
	case "float32":
		v := make([]float32, len(f.Data))
		for i, x := range f.Data {
			v[i] = float32(x)
		}
		return torch.Must(torch.FromSlice(v, f.Shape...))
	case "int64":
		v := make([]int64, len(f.Data))
		for i, x := range f.Data {
			v[i] = int64(x)
		}
		return torch.Must(torch.FromSlice(v, f.Shape...))
	case "bool":
		v := make([]bool, len(f.Data))
		for i, x := range f.Data {
			v[i] = x != 0
		}
		return torch.Must(torch.FromSlice(v, f.Shape...))
	}
	t.Fatalf("fixture dtype %q", f.DType)
	return nil
}

// RequireClose checks got against want within float32 tolerance:
// |got-want| <= atol + rtol*|want|.
func RequireClose(t testing.TB, want *Tensor, got *torch.Tensor, rtol, atol float64, what string) {
	t.Helper()
	require.NotNil(t, got, what)
	require.Equal(t, want.Shape, got.Shape(), "%s: shape", what)
	vals := torch.Must(got.Float64s())
	require.Len(t, vals, len(want.Data), what)
	for i, w := range want.Data {
		if g := vals[i]; math.Abs(g-w) > atol+rtol*math.Abs(w) || math.IsNaN(g) != math.IsNaN(w) {
			t.Fatalf("%s: element %d = %v, PyTorch %v", what, i, g, w)
		}
	}
}

// RequireEqual checks got against want exactly.
func RequireEqual(t testing.TB, want *Tensor, got *torch.Tensor, what string) {
	t.Helper()
	RequireClose(t, want, got, 0, 0, what)
}

var (
	dirsMu sync.Mutex
	dirs   = map[string]*cachedDir{}
)

type cachedDir struct {
	once sync.Once
	path string
	err  error
}

// Dir runs scripts/fixtures/<script> once per test binary with a fresh
// folder as its argument and returns that folder. Call Cleanup from
// TestMain to remove the folders when the tests end.
func Dir(t testing.TB, script string) string {
	t.Helper()
	dirsMu.Lock()
	c, ok := dirs[script]
	if !ok {
		c = &cachedDir{}
		dirs[script] = c
	}
	dirsMu.Unlock()
	c.once.Do(func() {
		if c.path, c.err = os.MkdirTemp("", "testref-"); c.err != nil {
			return
		}
		if msg, err := exec.Command(Python, Script(script), c.path).CombinedOutput(); err != nil {
			c.err = fmt.Errorf("%s %s: %w\n%s", Python, script, err, msg)
		}
	})
	require.NoError(t, c.err, "making reference files with Debian's python3-torch")
	return c.path
}

// Cleanup removes the folders Dir made.
func Cleanup() {
	dirsMu.Lock()
	defer dirsMu.Unlock()
	for _, c := range dirs {
		if c.path != "" {
			os.RemoveAll(c.path)
		}
	}
}
