package finetune

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// TestFinalEvaluationsReused: a run that ends with the best epoch's
// weights (an earlier epoch than the last), with the probe's model
// (probe_fallback) or with the probe as its only model (recipe:
// linear-probe) reports the validation and train-sample evaluations made
// of that state during the run; they are those a fresh Evaluate of the
// final model gives on the same images, image for image.
func TestFinalEvaluationsReused(t *testing.T) {
	train := shapes(t, 12)
	val := t.TempDir()
	writeShapes(t, val, 7, 40, 2)
	weights := pretrained(t, train)
	base := tinyConfig(t, train)
	base.Data.Val = val
	base.Model.Weights = weights
	base.Train.EarlyStopping.Patience = 0
	cases := []struct {
		name  string
		setup func(c *Config)
		check func(t *testing.T, res *Result)
	}{
		{"best epoch before the last", func(c *Config) {
			// Plain SGD at a rate this large makes validation jump from
			// epoch to epoch.
			c.Train.Optimizer, c.Train.Momentum, c.Train.LR, c.Train.Schedule = "sgd", 0, 30, "constant"
			c.Train.EarlyStopping.Metric = "val_loss"
			c.Stages = []Stage{{Name: "head", Epochs: 5, Freeze: "all"}}
		}, func(t *testing.T, res *Result) {
			require.False(t, res.EndedWithProbe)
			require.Less(t, res.Best.GlobalEpoch, len(res.History), "the best epoch is not the last")
			require.Equal(t, res.Best.ValLoss, res.Val.Loss)
		}},
		{"probe fallback", func(c *Config) {
			// As TestProbeFallback: the trained model is worse than the
			// probe's.
			c.Model.Head.Init, c.ProbeFallback = "probe", true
			c.Train.Optimizer, c.Train.Momentum, c.Train.LR = "sgd", 0, 1e4
			c.Train.Schedule, c.Train.WeightDecay, c.Train.LabelSmoothing = "constant", 0, 0.999
			c.Train.GradClip = 1
			c.Stages = []Stage{{Name: "head", Epochs: 2, Freeze: "all"}}
		}, func(t *testing.T, res *Result) {
			require.True(t, res.EndedWithProbe)
		}},
		{"linear probe", func(c *Config) { c.Recipe = "linear-probe" }, func(t *testing.T, res *Result) {
			require.Empty(t, res.History)
			require.InDelta(t, *res.ProbeAccuracy, res.Val.Accuracy, 1e-9)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.Output.Dir = filepath.Join(t.TempDir(), "run")
			tc.setup(&cfg)
			res, err := Train(context.Background(), cfg, Options{})
			require.NoError(t, err)
			defer nn.Free(res.Model)
			tc.check(t, res)
			for _, c := range []struct {
				dir  string
				got  *Evaluation
				want int
			}{{val, res.Val, 14}, {train, res.TrainEval, 24}} {
				fresh, err := Evaluate(context.Background(), res.Model, res.Meta, c.dir, "error")
				require.NoError(t, err)
				require.Len(t, c.got.Images, c.want)
				require.InDelta(t, fresh.Loss, c.got.Loss, 1e-6)
				require.Equal(t, fresh.Accuracy, c.got.Accuracy)
				require.Equal(t, fresh.Confusion, c.got.Confusion)
				require.Equal(t, fresh.Images, c.got.Images, "every image's result")
			}
		})
	}
}
