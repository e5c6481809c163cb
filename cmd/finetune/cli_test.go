package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHelp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := cli(t, dir, "--help")
	requireExit(t, r, 0)
	for _, name := range []string{"init", "config", "inspect", "run", "eval", "predict", "version"} {
		require.Contains(t, r.stdout, "\n  "+name+" ")
	}
	for _, args := range [][]string{{"run", "--help"}, {"help", "run"}} {
		r = cli(t, dir, args...)
		requireExit(t, r, 0)
		require.Contains(t, r.stdout, "Usage: finetune run")
		require.Contains(t, r.stdout, "--train.lr number (FINETUNE_TRAIN_LR; default 0.0001)")
		require.Contains(t, r.stdout, "--resume PATH")
		require.Contains(t, r.stdout, "--stages NAME:EPOCHS:FREEZE[:MULT],... (FINETUNE_STAGES; default head:5:all:0.1,finetune:15:layer2:3)")
		require.Empty(t, r.stderr)
	}
	for _, cmd := range []string{"init", "config", "inspect", "eval", "predict", "version"} {
		r = cli(t, dir, cmd, "--help")
		requireExit(t, r, 0)
		require.Contains(t, r.stdout, "Usage: finetune "+cmd)
	}
	r = cli(t, dir)
	requireExit(t, r, 2)
	require.Contains(t, r.stderr, "Usage: finetune <command>")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 2)
	base := tinyFlags("data", "out", "head:1:all")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "typo.yaml"), []byte("train:\n  lrr: 0.1\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "indent.yaml"), []byte("train:\n  lr: 0.1\n   momentum: 2\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "value.yaml"), []byte("data:\n  train: data\n  batch_size: 4.5\n"), 0o644))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"evl"}, `did you mean eval?`},
		{append(append([]string{"run"}, base...), "--train.batchnorm", "sometimes"), `train.batchnorm: "sometimes" is not one of auto, frozen, train, adapt, legacy`},
		{append([]string{"run", "--config", "typo.yaml"}, base...), `unknown config key "train.lrr" (did you mean "train.lr"?)`},
		{append([]string{"run", "--config", "indent.yaml"}, base...), "config indent.yaml: line 3: mapping values are not allowed in this context"},
		{[]string{"run", "--config", "value.yaml"}, `config value.yaml: line 3: data.batch_size: "4.5" is not an integer`},
		{append([]string{"run", "--train.lrr", "0.1"}, base...), "flag provided but not defined: --train.lrr (did you mean --train.lr?)"},
		{append([]string{"run", "--train.lr", "fast"}, base...), `invalid value "fast" for flag --train.lr: not a number`},
		{append([]string{"run", "--data.batch_size", "4.5"}, base...), `invalid value "4.5" for flag --data.batch_size: not an integer`},
		{append(append([]string{"run"}, base...), "--model.arch", "resnet19", "--data.train", "nowhere"), `model.arch: "resnet19" is not one of convnext_base, convnext_small, convnext_tiny, efficientnet_b0, `},
		{append(append([]string{"inspect"}, base...), "--model.arch", "resnet19"), `model.arch: "resnet19" is not one of`},
		{append(append([]string{"run"}, base...), "--stages", "head:1:layr3"), `stages[0].freeze: "layr3" is not one of none, stem, layer1, layer2, layer3, layer4, all (did you mean "layer3"?)`},
		{[]string{"run", "--output.dir", "out"}, "data.train: required"},
		{[]string{"run", "--config", "missing.yaml"}, "missing.yaml"},
		{[]string{"predict", "--checkpoint", "x.safetensors"}, "no PATH"},
		{[]string{"eval", "--data", "data", "--format", "xml"}, `--format: "xml" is not one of`},
	} {
		r := cli(t, dir, tc.args...)
		requireExit(t, r, 2)
		require.Contains(t, r.stderr, tc.want, tc.args)
		require.True(t, strings.HasPrefix(r.stderr, "finetune: "), r.stderr)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
		require.NotContains(t, r.stderr, "goroutine")
	}
	r := cli(t, dir, append(append([]string{"run"}, base...), "--train.batchnorm", "sometimes", "--train.lr", "-1", "--verbose")...)
	requireExit(t, r, 2)
	require.Contains(t, r.stderr, "\n  - train.lr: must be positive, got -1\n", "--verbose lists every problem")
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("data:\n  train: imgs\ntrain:\n  lr: 0.5\n  momentum: 0.8\n"), 0o644))
	lr := func(r result) string {
		t.Helper()
		requireExit(t, r, 0)
		for _, line := range strings.Split(r.stdout, "\n") {
			if v, ok := strings.CutPrefix(line, "  lr: "); ok {
				return v
			}
		}
		t.Fatalf("no lr in\n%s", r.stdout)
		return ""
	}
	env := []string{"FINETUNE_TRAIN_LR=0.25"}
	require.Equal(t, "0.5", lr(cli(t, dir, "config", "--config", "c.yaml")))
	require.Equal(t, "0.25", lr(cliEnv(t, dir, env, "config", "--config", "c.yaml")))
	r := cliEnv(t, dir, env, "config", "--config", "c.yaml", "--train.lr", "0.125")
	require.Equal(t, "0.125", lr(r))
	require.Contains(t, r.stdout, "  momentum: 0.8\n", "a flag overrides only its own key")
	require.Contains(t, r.stdout, "# from: c.yaml < environment (FINETUNE_TRAIN_LR) < flags (--train.lr)")

	// Without --config, ./finetune.yaml is read.
	require.NoError(t, os.Rename(filepath.Join(dir, "c.yaml"), filepath.Join(dir, "finetune.yaml")))
	require.Equal(t, "0.5", lr(cli(t, dir, "config")))
}

func TestInit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := cli(t, dir, "init")
	requireExit(t, r, 0)
	b, err := os.ReadFile(filepath.Join(dir, "finetune.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(b), "# learning rate of the head")

	r = cli(t, dir, "init")
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, "finetune.yaml exists: use --force")
	requireExit(t, cli(t, dir, "init", "--force"), 0)

	requireExit(t, cli(t, dir, "init", "sub/other.yaml"), 0)
	// The file written is a valid configuration once data.train is set.
	r = cli(t, dir, "config", "--config", "sub/other.yaml", "--data.train", "imgs")
	requireExit(t, r, 0)
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := cli(t, t.TempDir(), "version")
	requireExit(t, r, 0)
	require.Regexp(t, `^finetune  \d+\.\d+\.\d+\ngo        go1\.\S+ \S+\nlibtorch  \d+\.\d+`, r.stdout)
	// Debian's libtorch here is a CPU build: Gloo only.
	require.Contains(t, r.stdout, "\nc10d      gloo\n")
	r = cli(t, t.TempDir(), "--version", "--format", "json")
	requireExit(t, r, 0)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	require.NotEmpty(t, v["libtorch"])
	require.Equal(t, []any{"gloo"}, v["process_groups"])
}

// TestNamesFromFilesEscaped: a name that carries terminal control
// characters (a file, a class folder) reaches the terminal escaped, in
// errors as in tables.
func TestNamesFromFilesEscaped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := cli(t, dir, "predict", "--checkpoint", "x.safetensors", "evil\x1b[2J.jpg")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `evil\x1b[2J.jpg`)
	require.NotContains(t, r.stderr, "\x1b")

	writeImages(t, filepath.Join(dir, "data"), 2)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "data", "empty\x07class"), 0o755))
	r = cli(t, dir, append([]string{"run"}, tinyFlags("data", "out", "head:1:all")...)...)
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `empty\aclass`)
	require.NotContains(t, r.stderr, "\x07")
}
