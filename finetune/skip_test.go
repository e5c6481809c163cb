package finetune

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// skipConfig is tinyConfig on a training folder and a validation folder,
// each with one damaged image, under data.on_bad_image: skip.
func skipConfig(t *testing.T, valPerClass int) Config {
	train, val := t.TempDir(), t.TempDir()
	writeShapes(t, train, 12, 40, 1)
	writeShapes(t, val, valPerClass, 40, 2)
	for _, bad := range []string{filepath.Join(train, "dark", "003.png"), filepath.Join(val, "bright", "000.png")} {
		require.NoError(t, os.WriteFile(bad, []byte("not a png"), 0o644))
	}
	cfg := tinyConfig(t, train)
	cfg.Data.Val = val
	cfg.Data.OnBadImage = "skip"
	cfg.Stages[0].Epochs = 1
	return cfg
}

// TestSkipBadImageKeepsRecipe: a damaged training image and a damaged
// validation image leave the probe, the probe-started head and the
// search on, fitted on the labels of the images that were loaded.
func TestSkipBadImageKeepsRecipe(t *testing.T) {
	for _, cache := range []string{"off", "on"} {
		cfg := skipConfig(t, 3)
		cfg.Probe, cfg.Model.Head.Init, cfg.Search = true, "probe", "quick"
		cfg.Train.CacheFeatures = cache
		// Training features are cached only without augmentation.
		cfg.Augment.Enabled = cache == "off"
		res, err := Train(context.Background(), cfg, Options{})
		require.NoError(t, err, "cache_features %s", cache)
		res.Model.Close()
		require.NotNil(t, res.ProbeAccuracy)
		require.Equal(t, "probe", res.Plan.HeadStart)
		require.Len(t, res.Skipped, 2)
		keys := map[string]bool{}
		for _, d := range res.Plan.Decisions {
			keys[d.Key] = true
		}
		// The search needs cached training features.
		require.Equal(t, cache == "on", keys["train.lr"], "the search ran")
		if cache == "on" {
			require.Equal(t, "training and validation", res.Cached)
		}
	}
}

// TestSkipBadImageLoneValidation: a validation image left alone by a
// skipped one is evaluated, not dropped by training's no-batch-of-1 rule.
func TestSkipBadImageLoneValidation(t *testing.T) {
	cfg := skipConfig(t, 1)
	cfg.Probe = true
	res, err := Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	res.Model.Close()
	require.NotNil(t, res.ProbeAccuracy)
	require.EqualValues(t, 1, res.Val.Confusion.Total())
}
