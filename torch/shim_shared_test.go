//go:build !shim_shared && !libtorch_env

package torch

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSharedShimMode builds the shim as a library with
// scripts/build-shim.sh, then this package's tests with the shim_shared tag
// against it, and runs some of them: the route scripts/gpu-check.sh takes
// on a GPU machine. It takes about 20 s.
func TestSharedShimMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the shim and a test binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	dir := t.TempDir()
	run := func(name string, args []string, env ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %v:\n%s", name, args, out)
	}
	run("bash", []string{"../scripts/build-shim.sh", "system", dir})
	bin := filepath.Join(dir, "torch.test")
	run(goBin, []string{"test", "-c", "-tags", "shim_shared", "-o", bin, "."}, "CGO_LDFLAGS=-L"+dir)
	run(bin, []string{"-test.run", "TestAutocast|TestBuildInfo|TestTransfersOnCPU|TestSetData|TestBadCalls|TestAllocator"}, "LD_LIBRARY_PATH="+dir)
}
