package finetune

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// pretrained writes the backbone of a resnet18 whose BatchNorm statistics
// describe writeShapes images at 32 pixels, as pretrained weights do for
// their source data, and returns the file.
func pretrained(t *testing.T, data string) string {
	cfg := tinyConfig(t, data)
	cfg.Data.ValSplit = 0.5
	cfg.Train.BatchNorm = "train"
	cfg.Stages = []Stage{{Name: "source", Epochs: 1, Freeze: "none", BackboneLRMult: 1}}
	res, err := Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	defer nn.Free(res.Model)
	path := filepath.Join(t.TempDir(), "backbone.safetensors")
	require.NoError(t, nn.WriteSafetensors(path, nn.StateDict(res.Model.Backbone), nil))
	// A short training leaves running statistics far from the data's;
	// pretrained weights have converged ones: estimate them (AdaBN).
	cfg.Model.Weights = path
	cfg.Train.BatchNorm = "adapt"
	cfg.Stages = []Stage{{Name: "stats", Epochs: 1, Freeze: "all"}}
	cfg.Output.Dir = filepath.Join(t.TempDir(), "stats")
	res2, err := Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	defer nn.Free(res2.Model)
	require.NoError(t, nn.WriteSafetensors(path, nn.StateDict(res2.Model.Backbone), nil))
	return path
}

// TestAutoBatchNormAndBaselines: auto keeps the stored statistics on data
// like the source's and adapts them on negatives; the probe and the
// search run on cached features and are reported.
func TestAutoBatchNormAndBaselines(t *testing.T) {
	source := shapes(t, 12)
	weights := pretrained(t, source)
	negatives := t.TempDir()
	writeShapes(t, negatives, 12, 40, 1)
	invertFolder(t, negatives)
	for _, c := range []struct {
		data, want string
	}{{source, "frozen"}, {negatives, "adapt"}} {
		cfg := tinyConfig(t, c.data)
		cfg.Model.Weights = weights
		cfg.Train.BatchNorm = "auto"
		cfg.Probe, cfg.Search = true, "quick"
		cfg.Augment.Enabled = false
		cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all"}}
		var msgs []string
		res, err := Train(context.Background(), cfg, Options{Observer: func(e Event) { msgs = append(msgs, e.Message) }})
		require.NoError(t, err)
		require.Equal(t, c.want, res.BatchNorm, "%v", msgs)
		require.NotNil(t, res.ProbeAccuracy)
		require.FileExists(t, filepath.Join(cfg.Output.Dir, "shift.json"))
		require.FileExists(t, filepath.Join(cfg.Output.Dir, "search.json"))
		nn.Free(res.Model)
	}
}

func invertFolder(t *testing.T, root string) {
	require.NoError(t, filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return invertPNG(path)
	}))
}

// TestLinearProbeRecipe: recipe linear-probe trains no stage and ends with
// the probe as the head.
func TestLinearProbeRecipe(t *testing.T) {
	data := shapes(t, 12)
	cfg := tinyConfig(t, data)
	cfg.Model.Weights = pretrained(t, data)
	cfg.Recipe = "linear-probe"
	res, err := Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	defer nn.Free(res.Model)
	require.Empty(t, res.History)
	require.NotNil(t, res.ProbeAccuracy)
	require.InDelta(t, *res.ProbeAccuracy, res.Val.Accuracy, 1e-9, "the final model is the probe")
}
