package plot

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/finetune-go/finetune/finetune"
	"github.com/stretchr/testify/require"
)

func TestPlots(t *testing.T) {
	var b bytes.Buffer
	require.Error(t, Curves(&b, nil))
	history := []finetune.EpochMetrics{
		{Stage: "head", Epoch: 1, TrainLoss: 0.7, ValLoss: 0.6, TrainAccuracy: 0.5, ValAccuracy: 0.6},
		{Stage: "finetune", Epoch: 1, TrainLoss: 0.3, ValLoss: 0.4, TrainAccuracy: 0.9, ValAccuracy: 0.8, Best: true},
	}
	require.NoError(t, Curves(&b, history))
	cfg, err := png.DecodeConfig(&b)
	require.NoError(t, err)
	require.Equal(t, [2]int{1100, 480}, [2]int{cfg.Width, cfg.Height})

	b.Reset()
	require.Error(t, Confusion(&b, finetune.NewConfusion(nil), "none"))
	conf := finetune.NewConfusion([]string{"cat", "dog", "bird"})
	conf.Add([]int64{0, 1, 2, 2}, []int64{0, 1, 1, 2})
	require.NoError(t, Confusion(&b, conf, "validation"))
	img, err := png.Decode(&b)
	require.NoError(t, err)
	require.Greater(t, img.Bounds().Dx(), 3*64)
}
