package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunOnCPU runs the benchmark's code path for a few tiny steps; the
// real measurement needs a GPU (scripts/gpu-check.sh).
func TestRunOnCPU(t *testing.T) {
	for _, mode := range []string{"bf16", "off"} {
		line, err := run(config{device: "cpu", arch: "resnet50", classes: 10, batch: 2, size: 32, amp: mode, channelsLast: true, warmup: 1, steps: 1}, io.Discard)
		require.NoError(t, err, mode)
		require.Regexp(t, `^go: resnet50, batch 2 at 32, `+mode+`, channels_last, cpu: [0-9.]+ images/s \(1 steps in [0-9.]+ s, loss [0-9.]+\)$`, line)
	}
	_, err := run(config{device: "cpu", amp: "fp8", steps: 1}, io.Discard)
	require.ErrorContains(t, err, "want bf16, fp16 or off")
}
