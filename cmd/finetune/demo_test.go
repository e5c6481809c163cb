package main

import (
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDemoQuick runs 'finetune demo --quick' as a user would and checks
// its table: two recipes, accuracies between 0 and 1, the files written.
func TestDemoQuick(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "runs")
	r := cli(t, dir, "demo", "--quick", "--device", "cpu", "--work", filepath.Join(dir, "work"), "--out", out)
	requireExit(t, r, 0)
	requirePlain(t, r.stdout)
	rows := regexp.MustCompile(`(?m)^\| (classic Keras recipe|finetune default) \| ([0-9.]+) \| ([0-9.]+) \|`).FindAllStringSubmatch(r.stdout, -1)
	require.Len(t, rows, 2, r.stdout)
	for _, row := range rows {
		for _, v := range row[2:4] {
			acc, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			require.True(t, acc >= 0 && acc <= 1, "%s: accuracy %v", row[1], acc)
		}
	}
	for _, f := range []string{"demo.md", "classic/curves.png", "classic/metrics.jsonl", "finetune/curves.png", "finetune/best-delta.safetensors"} {
		require.FileExists(t, filepath.Join(out, f))
	}
}
