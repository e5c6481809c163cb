package finetune

import (
	"bytes"
	"context"
	"image"
	_ "image/png"
	"log"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// trainedOneEpoch trains tinyConfig for one epoch on n writeShapes
// images per class and returns the folder, the configuration and the
// result, whose model is the caller's.
func trainedOneEpoch(t *testing.T, n int) (string, Config, *Result) {
	root := t.TempDir()
	writeShapes(t, root, n, 40, 3)
	cfg := tinyConfig(t, root)
	cfg.Stages[0].Epochs = 1
	res, err := Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	return root, cfg, res
}

// TestPredictImageMatchesPredict: an image in memory gets the
// probabilities its file gets, with and without test-time augmentation,
// from a trained model and Result.Meta alone.
func TestPredictImageMatchesPredict(t *testing.T) {
	root, cfg, res := trainedOneEpoch(t, 6)
	defer res.Model.Close()
	require.Equal(t, res.Classes, res.Meta.Classes)
	require.Equal(t, cfg, res.Meta.Config)

	files, err := ImageFiles([]string{root})
	require.NoError(t, err)
	files = files[:3]
	for _, tta := range []bool{false, true} {
		got, err := Predict(context.Background(), res.Model, res.Meta, files, PredictOptions{TTA: tta})
		require.NoError(t, err)
		require.Empty(t, got.Skipped)
		want := got.Predictions
		for i, path := range files {
			f, err := os.Open(path)
			require.NoError(t, err)
			img, _, err := image.Decode(f)
			require.NoError(t, f.Close())
			require.NoError(t, err)
			got, err := PredictImage(res.Model, res.Meta, img, tta)
			require.NoError(t, err)
			require.Empty(t, got.Path)
			require.Equal(t, want[i].Class, got.Class, filepath.Base(path))
			require.InDeltaSlice(t, want[i].Probabilities, got.Probabilities, 1e-6, filepath.Base(path))
		}
	}
	_, err = PredictImage(res.Model, res.Meta, image.NewGray(image.Rectangle{}), false)
	require.ErrorContains(t, err, "empty image")
}

// TestPredictSkipBadImage: a folder with one damaged file is an error
// naming it by default (as PyTorch's DataLoader raises PIL's error);
// under skip the other files are classified and the damaged one comes
// back as data, with the reason, not printed.
func TestPredictSkipBadImage(t *testing.T) {
	root, _, res := trainedOneEpoch(t, 4)
	defer res.Model.Close()
	bad := filepath.Join(root, "dark", "broken.png")
	require.NoError(t, os.WriteFile(bad, []byte("not a png"), 0o644))
	files, err := ImageFiles([]string{root})
	require.NoError(t, err)
	require.Len(t, files, 9)

	var logged bytes.Buffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	for _, mode := range []string{"", "error"} {
		_, err = Predict(context.Background(), res.Model, res.Meta, files, PredictOptions{OnBadImage: mode})
		require.ErrorContains(t, err, bad)
	}
	got, err := Predict(context.Background(), res.Model, res.Meta, files, PredictOptions{OnBadImage: "skip"})
	require.NoError(t, err)
	require.Len(t, got.Predictions, 8)
	require.Len(t, got.Skipped, 1)
	require.Equal(t, bad, got.Skipped[0].Path)
	require.Error(t, got.Skipped[0].Err)
	for _, p := range got.Predictions {
		require.NotEqual(t, bad, p.Path)
		require.Len(t, p.Probabilities, 2)
	}
	require.Empty(t, logged.String())
	_, err = Predict(context.Background(), res.Model, res.Meta, files, PredictOptions{OnBadImage: "ignore"})
	require.ErrorContains(t, err, "data.on_bad_image")
}
