package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/finetune-go/finetune/finetune"
	"github.com/stretchr/testify/require"
)

// TestRunETA: the run's ETA is the plan's estimate of the stage, less
// the time it ran, until the stage's own pace is measured, then that
// pace over the steps left; plus the plan's estimate of the later
// stages. The bar shows it beside the epoch's.
func TestRunETA(t *testing.T) {
	t0 := time.Now()
	c := runClock{key: "-1 ft", start: t0, estimate: 100, later: 200, firstDone: -1}
	step := func(epoch, s int) finetune.Event {
		return finetune.Event{Kind: finetune.EventStep, Fold: -1, Stage: "ft", Epoch: epoch, Step: s, Steps: 10}
	}
	left, ok := c.left(step(1, 1), 2, t0.Add(10*time.Second))
	require.True(t, ok)
	require.InDelta(t, 90+200, left, 1e-9)
	left, _ = c.left(step(1, 3), 2, t0.Add(20*time.Second))
	require.InDelta(t, 5*17+200, left, 1e-9, "5 s a step, 17 steps left")
	left, _ = c.left(step(2, 10), 2, t0.Add(100*time.Second))
	require.InDelta(t, 200, left, 1e-9)
	_, ok = c.left(finetune.Event{Fold: -1, Stage: "head"}, 2, t0)
	require.False(t, ok, "another stage")

	var out bytes.Buffer
	d := &display{out: &out, errw: &out, mode: modeBar, epochs: map[string]int{}}
	d.event(finetune.Event{Kind: finetune.EventStage, Fold: -1, Stage: "ft", Epochs: 2, Estimate: 100, RunEstimate: 400})
	d.event(step(1, 1))
	require.Regexp(t, `ETA -, run 6m(39|40)s`, out.String(), "the stage's 100 s and the later stages' 300 s")
}
