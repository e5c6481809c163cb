package finetune

import (
	"context"
	"image"
	_ "image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPredictImageMatchesPredict: an image in memory gets the
// probabilities its file gets, with and without test-time augmentation,
// from a trained model and Result.Meta alone.
func TestPredictImageMatchesPredict(t *testing.T) {
	root := t.TempDir()
	writeShapes(t, root, 6, 40, 3)
	cfg := tinyConfig(t, root)
	cfg.Stages[0].Epochs = 1
	res, err := Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	defer res.Model.Close()
	require.Equal(t, res.Classes, res.Meta.Classes)
	require.Equal(t, cfg, res.Meta.Config)

	files, err := ImageFiles([]string{root})
	require.NoError(t, err)
	files = files[:3]
	for _, tta := range []bool{false, true} {
		want, err := Predict(context.Background(), res.Model, res.Meta, files, tta)
		require.NoError(t, err)
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
