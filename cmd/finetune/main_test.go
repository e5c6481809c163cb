package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// binary is the finetune command built once for the tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "finetune-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "finetune")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the command:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a run of the command printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

// cliEnv runs the command in dir with env added to an environment free of
// FINETUNE_ variables.
func cliEnv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(testEnv(t), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("finetune %s: %v", strings.Join(args, " "), err)
	}
	return r
}

func cli(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return cliEnv(t, dir, nil, args...)
}

// testEnv is the environment without FINETUNE_ variables, with torch
// hub's cache in a temporary folder.
func testEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FINETUNE_") && !strings.HasPrefix(kv, "TORCH_HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "TORCH_HOME="+t.TempDir())
}

// requireExit fails unless r exited with code, showing its output.
func requireExit(t *testing.T, r result, code int) {
	t.Helper()
	require.Equal(t, code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
}

// classes of writeImages and their colours.
var classes = map[string]color.NRGBA{"blue": {30, 60, 220, 255}, "red": {220, 40, 30, 255}}

// writeImages writes an image folder under root: n PNGs per class,
// 16×16 to 40×40 pixels, each class its own colour with noise.
func writeImages(t *testing.T, root string, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for name, c := range classes {
		dir := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for i := range n {
			w, h := 16+r.IntN(25), 16+r.IntN(25)
			img := image.NewNRGBA(image.Rect(0, 0, w, h))
			for y := range h {
				for x := range w {
					d := uint8(r.IntN(30))
					img.SetNRGBA(x, y, color.NRGBA{c.R - d, c.G + d, c.B - d, 255})
				}
			}
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%02d.png", i)))
			require.NoError(t, err)
			require.NoError(t, png.Encode(f, img))
			require.NoError(t, f.Close())
		}
	}
}

// tinyFlags configure a fast run: resnet18 from scratch at 32 pixels on
// the CPU, batches of 4, one decoding worker, BatchNorm pinned to frozen
// and no baselines.
func tinyFlags(data, out string, stages string) []string {
	return []string{"--data.train", data, "--model.arch", "resnet18", "--model.weights", "none",
		"--data.image_size", "32", "--data.batch_size", "4", "--data.workers", "1", "--device", "cpu",
		"--output.dir", out, "--stages", stages, "--train.batchnorm", "frozen", "--probe=false", "--search", "off"}
}

// requirePlain fails if s holds a carriage return or an escape sequence.
func requirePlain(t *testing.T, s string) {
	t.Helper()
	require.NotContains(t, s, "\r")
	require.NotContains(t, s, "\x1b")
}
