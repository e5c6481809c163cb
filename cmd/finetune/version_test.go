package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestVersionAllocator checks that the finetune binary, as go build makes
// it, runs on tcmalloc and says so.
func TestVersionAllocator(t *testing.T) {
	t.Parallel()
	r := cli(t, t.TempDir(), "version")
	requireExit(t, r, 0)
	require.Regexp(t, `\nmalloc    tcmalloc \d+\.\d+\S*\n$`, r.stdout)
	r = cli(t, t.TempDir(), "version", "--format", "json")
	requireExit(t, r, 0)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	require.Regexp(t, `^tcmalloc \d+\.\d+`, v["allocator"])
}
