package finetune

import (
	"context"
	"slices"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// TestTrainAccuracyIsEvaluated: under heavy augmentation, mixup and
// dropout, each epoch's train accuracy is the model in evaluation mode
// on the un-augmented training images, what Evaluate gives on the same
// images, and the gap is that accuracy less validation's; the loss of the
// steps under augmentation stays beside it. With the features cached
// (the head stage of a frozen backbone) the train images' are too.
func TestTrainAccuracyIsEvaluated(t *testing.T) {
	train := shapes(t, 10)
	val := t.TempDir()
	writeShapes(t, val, 6, 40, 2)
	for _, cache := range []string{"off", "auto"} {
		cfg := tinyConfig(t, train)
		cfg.Data.Val = val
		cfg.Train.CacheFeatures = cache
		cfg.Train.EarlyStopping.Patience = 0
		cfg.Model.Head.Dropout = 0.5
		cfg.Augment = AugmentConfig{Enabled: true, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{0.5, 2}, HFlip: 0.5, VFlip: 0.5,
			Rotation: 90, Brightness: 0.8, Contrast: 0.8, Saturation: 0.8, Hue: 0.3, Mixup: 0.4}
		cfg.Stages = []Stage{{Name: "head", Epochs: 2, Freeze: "all"}}
		opts, _ := recorded(cfg)
		res, err := Train(context.Background(), cfg, opts)
		require.NoError(t, err, cache)
		require.Equal(t, 20, res.Plan.TrainSample)
		for _, em := range res.History {
			require.Equal(t, em.TrainAccuracy-em.ValAccuracy, em.Gap, cache)
			require.NotEqual(t, em.TrainLoss, em.TrainEvalLoss, "%s: the steps' loss is under augmentation", cache)
		}
		ev, err := Evaluate(context.Background(), res.Model, res.Meta, train, "error")
		require.NoError(t, err)
		require.Equal(t, ev.Accuracy, res.Best.TrainAccuracy, "%s: the best epoch's weights are the model's", cache)
		require.Equal(t, ev.Accuracy, res.TrainEval.Accuracy, cache)
		require.Equal(t, ev.Loss, res.TrainEval.Loss, cache)
		if cache == "off" { // the same unfused backbone as Evaluate: to the bit
			require.Equal(t, ev.Loss, res.Best.TrainEvalLoss)
		} else {
			require.Equal(t, "validation", res.Plan.Stages[0].Cache)
			require.InDelta(t, ev.Loss, res.Best.TrainEvalLoss, 1e-5)
		}
		require.Equal(t, res.TrainEval.Accuracy-res.Val.Accuracy, res.Summary()["gap"])
		nn.Free(res.Model)
	}
}

// TestTrainSample: the train accuracy's images are every training
// image up to trainEvalSample, else that many chosen by the seed, in
// their order, the same for the same seed.
func TestTrainSample(t *testing.T) {
	few := []int{9, 3, 5}
	require.Equal(t, few, trainSample(1, few))
	many := make([]int, 1000)
	for i := range many {
		many[i] = 2 * i
	}
	a, b, c := trainSample(1, many), trainSample(1, many), trainSample(2, many)
	require.Len(t, a, trainEvalSample)
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)
	require.True(t, slices.IsSorted(a))
	for _, i := range a {
		require.Zero(t, i%2, "not a training index")
	}
}
