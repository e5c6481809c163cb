package demo

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/finetune"
	"github.com/stretchr/testify/require"
)

// TestQuickDemo runs the demo at its reduced size: both recipes train on
// real Fashion-MNIST images, from a source model trained on the other
// classes, and the table is sane.
func TestQuickDemo(t *testing.T) {
	work := t.TempDir()
	o := Options{Work: work, Out: filepath.Join(work, "runs"), Quick: true, Device: "cpu",
		Observer: func(e finetune.Event) {
			if e.Kind != finetune.EventStep {
				t.Log(e.Kind, e.Message, e.Metrics)
			}
		}}
	rep, err := Run(context.Background(), o)
	require.NoError(t, err)
	t.Log("\n" + rep.Table())
	require.Len(t, rep.Rows, 2)
	for _, r := range rep.Rows {
		require.True(t, r.TrainAccuracy >= 0 && r.TrainAccuracy <= 1, r.Recipe)
		require.True(t, r.TestAccuracy >= 0 && r.TestAccuracy <= 1, r.Recipe)
		require.FileExists(t, filepath.Join(r.RunDir, "metrics.jsonl"))
		require.Positive(t, r.CheckpointBytes)
	}
	classic, ours := rep.Rows[0], rep.Rows[1]
	require.Greater(t, classic.HeadParams, 100*ours.HeadParams, "the classic head is the large one")
	require.Greater(t, classic.CheckpointBytes, ours.CheckpointBytes)
	require.GreaterOrEqual(t, ours.TestAccuracy, 0.7, "fine-tuned T-shirt vs shirt classifier")
	require.FileExists(t, rep.SourceWeights)
	again, err := os.Stat(rep.SourceWeights)
	require.NoError(t, err)
	require.Positive(t, again.Size())
}
