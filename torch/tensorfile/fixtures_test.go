package tensorfile_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/torch/tensorfile"
)

// python is Debian's Python, for which python3-torch and python3-torchvision
// are installed. The tests need it: they fail, not skip, without it.
const python = "/usr/bin/python3"

// expectedTensor is one entry of expected.json.
type expectedTensor struct {
	Name   string           `json:"name"`
	DType  tensorfile.DType `json:"dtype"`
	Shape  []int64          `json:"shape"`
	SHA256 string           `json:"sha256"`
	Hex    string           `json:"hex"`
}

// fixtures are made once per test binary by scripts/fixtures/tensorfile.py,
// in a directory that TestMain removes: the resnet18 files take seconds to
// make and are shared by many tests, so they cannot live in one test's
// t.TempDir.
var fixtures struct {
	once     sync.Once
	dir      string
	expected map[string][]expectedTensor
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtures.dir != "" {
		os.RemoveAll(fixtures.dir)
	}
	os.Exit(code)
}

// fixtureDir returns the directory of the PyTorch fixtures and the expected
// tensors of each kind of state dict, generating them on first use.
func fixtureDir(t testing.TB) (string, map[string][]expectedTensor) {
	t.Helper()
	fixtures.once.Do(func() {
		fixtures.dir, fixtures.err = os.MkdirTemp("", "tensorfile-fixtures-")
		if fixtures.err != nil {
			return
		}
		script := filepath.Join("..", "..", "scripts", "fixtures", "tensorfile.py")
		out, err := exec.Command(python, script, fixtures.dir).CombinedOutput()
		if err != nil {
			fixtures.err = fmt.Errorf("%s %s failed (Debian's python3-torch and python3-torchvision are required): %w\n%s", python, script, err, out)
			return
		}
		data, err := os.ReadFile(filepath.Join(fixtures.dir, "expected.json"))
		if err == nil {
			err = json.Unmarshal(data, &fixtures.expected)
		}
		fixtures.err = err
	})
	require.NoError(t, fixtures.err)
	return fixtures.dir, fixtures.expected
}

// requireTensors checks tensors against the expected entries: same names in
// the same order, same dtypes and shapes, and the same bytes.
func requireTensors(t *testing.T, want []expectedTensor, got []tensorfile.Tensor) {
	t.Helper()
	wantNames := make([]string, len(want))
	for i, w := range want {
		wantNames[i] = w.Name
	}
	gotNames := make([]string, len(got))
	for i, g := range got {
		gotNames[i] = g.Name
	}
	require.Equal(t, wantNames, gotNames)
	for i, w := range want {
		g := got[i]
		require.Equal(t, w.DType, g.DType, w.Name)
		require.Equal(t, w.Shape, g.Shape, w.Name)
		if w.Hex != "" {
			require.Equal(t, w.Hex, hex.EncodeToString(g.Data), w.Name)
		}
		sum := sha256.Sum256(g.Data)
		require.Equal(t, w.SHA256, hex.EncodeToString(sum[:]), w.Name)
	}
}
