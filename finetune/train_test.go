package finetune

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

func TestTrainRuns(t *testing.T) {
	root := t.TempDir()
	writeShapes(t, root, 16, 40, 1)
	cfg := tinyConfig(t, root)
	cfg.Stages = []Stage{{Name: "head", Epochs: 2, Freeze: "all", BackboneLRMult: 0.1}, {Name: "ft", Epochs: 2, Freeze: "layer3", BackboneLRMult: 0.1}}
	var events []Event
	_, rec := recorded(cfg)
	res, err := Train(context.Background(), cfg, Options{Recorder: rec, Observer: func(e Event) { events = append(events, e) }})
	require.NoError(t, err)
	defer nn.Free(res.Model)
	require.Len(t, res.History, 4)
	for _, e := range events {
		if e.Kind != EventStep {
			t.Log(e.Kind, e.Message, e.Metrics)
		}
	}
	require.Len(t, rec.epochs, 4)
	require.FileExists(t, filepath.Join(cfg.Output.Dir, "best.safetensors"))
	epoch := []string{"epoch", "checkpoint last"}
	want := []string{"run_start"}
	for range 4 {
		want = append(want, epoch...)
	}
	want = append(want, "checkpoint best", "checkpoint best-delta", "run_end")
	require.Equal(t, want, rec.seen, "the record of a run")
	for _, e := range events {
		require.Contains(t, progress, e.Kind, "the Observer gets progress events only")
	}
	require.Equal(t, res.Plan, rec.runs[0].Plan)
	require.Len(t, res.Plan.Stages, 2)
}
