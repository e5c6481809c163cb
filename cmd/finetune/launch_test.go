package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/stretchr/testify/require"
)

// TestLaunchTwoRanks trains with two local processes over Gloo: one run
// folder, written by rank 0, and every epoch reported once.
func TestLaunchTwoRanks(t *testing.T) {
	dir := t.TempDir()
	data, out := filepath.Join(dir, "data"), filepath.Join(dir, "run")
	writeImages(t, data, 8)
	args := append([]string{"launch", "--nproc", "2", "--", "run"}, tinyFlags(data, out, "head:1:all,ft:1:layer3")...)
	r := cli(t, dir, args...)
	requireExit(t, r, 0)
	require.Contains(t, r.stdout, "data-parallel: rank 0 of 2 (gloo)")
	require.Equal(t, 1, strings.Count(r.stdout, "ft 1/1  train loss"), "each epoch is reported by rank 0 only")
	history, err := runfolder.ReadMetrics(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	require.Len(t, history, 2)
	require.FileExists(t, filepath.Join(out, "best.safetensors"))

	r = cli(t, dir, "launch", "--nproc", "2")
	requireExit(t, r, 2)
	require.Contains(t, r.stderr, "give the command to run after --")
}
