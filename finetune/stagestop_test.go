package finetune

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// writeSolid writes a two-class folder of 40-pixel images, each of one
// noisy colour, light ("light") or dark ("dark"): a linear probe on any
// backbone's features separates them.
func writeSolid(t *testing.T, root string, n int) {
	r := rand.New(rand.NewPCG(9, 9))
	for c, name := range []string{"dark", "light"} {
		dir := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for i := range n {
			img := image.NewNRGBA(image.Rect(0, 0, 40, 40))
			for y := range 40 {
				for x := range 40 {
					v := uint8(30 + 170*c + r.IntN(20))
					img.Set(x, y, color.NRGBA{v, v, v, 255})
				}
			}
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%03d.png", i)))
			require.NoError(t, err)
			require.NoError(t, png.Encode(f, img))
			require.NoError(t, f.Close())
		}
	}
}

// TestStageStopsWhenItCannotBeatTheProbe: where the linear probe is
// perfect on validation and the metric is val_accuracy, a later stage
// cannot beat the probe's model: it stops after train.probe_patience
// epochs, says so (an event, the Result and result.json), and the run
// ends with the probe's model; with probe_patience 0 it runs all its
// epochs. Every stage's plan holds its estimated time, which the stage
// events carry.
func TestStageStopsWhenItCannotBeatTheProbe(t *testing.T) {
	root := t.TempDir()
	writeSolid(t, root, 10)
	for _, patience := range []int{2, 0} {
		cfg := tinyConfig(t, root)
		cfg.Probe, cfg.ProbeFallback, cfg.Model.Head.Init = true, true, "probe"
		cfg.Train.ProbePatience = patience
		cfg.Train.EarlyStopping.Patience, cfg.Train.EarlyStopping.Metric = 0, "val_accuracy"
		cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all"}, {Name: "ft", Epochs: 3, Freeze: "layer3", BackboneLRMult: 0.1}}
		var stops, stages []Event
		opts, _ := recorded(cfg)
		opts.Observer = func(e Event) {
			switch e.Kind {
			case EventStageStop:
				stops = append(stops, e)
			case EventStage:
				stages = append(stages, e)
			}
		}
		res, err := Train(context.Background(), cfg, opts)
		require.NoError(t, err)
		nn.Free(res.Model)
		require.NotNil(t, res.ProbeAccuracy)
		require.Equal(t, 1.0, *res.ProbeAccuracy, "the probe is perfect: the test needs it")
		require.True(t, res.EndedWithProbe)

		require.Len(t, stages, 2)
		for i, st := range res.Plan.Stages {
			require.Positive(t, st.EstimatedSeconds, st.Name)
			require.Equal(t, st.EstimatedSeconds, stages[i].Estimate, st.Name)
			require.Contains(t, decisionKeys(res.Plan), fmt.Sprintf("stages[%d].estimate", i))
		}
		require.Equal(t, res.Plan.Stages[0].EstimatedSeconds+res.Plan.Stages[1].EstimatedSeconds, stages[0].RunEstimate)
		require.Equal(t, res.Plan.Stages[1].EstimatedSeconds, stages[1].RunEstimate)

		if patience == 0 {
			require.Len(t, res.History, 4)
			require.Empty(t, stops)
			require.Nil(t, res.Stops)
			continue
		}
		require.Len(t, res.History, 1+patience, "ft stopped after %d epochs", patience)
		require.Len(t, stops, 1)
		want := StageStop{Stage: "ft", Epoch: patience, Reason: "probe", Message: "stage ft: stopped after epoch 2: " +
			"none of its 2 epochs beat the best so far on val_accuracy (1.0000, the probe's model; train.probe_patience: 2), " +
			"and the run ends with that model unless an epoch beats it"}
		require.Equal(t, &want, stops[0].Stop)
		require.Equal(t, want.Message, stops[0].Message)
		require.Equal(t, []StageStop{want}, res.Stops)
		require.Equal(t, []StageStop{want}, res.Summary()["stage_stops"])
	}
}

func decisionKeys(p *Plan) []string {
	var keys []string
	for _, d := range p.Decisions {
		keys = append(keys, d.Key)
	}
	return keys
}

// TestBestAndProbeByOneMetric: the probe's model is epoch 0 of the
// comparison by train.early_stopping.metric. On the same run, where the
// probe is perfect on validation, an epoch that lowers the validation
// loss beats it by val_loss and the run ends with that epoch, while by
// val_accuracy none can: the run ends with the probe's model, and the
// later stage stops by the same comparison (probe_patience).
func TestBestAndProbeByOneMetric(t *testing.T) {
	root := t.TempDir()
	writeSolid(t, root, 10)
	for _, metric := range []string{"val_loss", "val_accuracy"} {
		t.Run(metric, func(t *testing.T) {
			cfg := tinyConfig(t, root)
			cfg.Probe, cfg.ProbeFallback, cfg.Model.Head.Init = true, true, "probe"
			cfg.Train.ProbePatience = 1
			cfg.Train.EarlyStopping.Patience, cfg.Train.EarlyStopping.Metric = 0, metric
			cfg.Stages = []Stage{{Name: "head", Epochs: 2, Freeze: "all"}, {Name: "ft", Epochs: 2, Freeze: "layer3", BackboneLRMult: 0.1}}
			var probe string
			opts := Options{Observer: func(e Event) {
				if strings.HasPrefix(e.Message, "the probe's model, epoch 0") {
					probe = e.Message
				}
			}}
			res, err := Train(context.Background(), cfg, opts)
			require.NoError(t, err)
			defer nn.Free(res.Model)
			require.Equal(t, 1.0, *res.ProbeAccuracy, "the probe is perfect: the test needs it")
			require.Contains(t, probe, "val_accuracy 1.0000: the best so far, which an epoch must beat on "+metric)
			var kept []string
			for _, e := range res.History {
				if e.Best {
					kept = append(kept, fmt.Sprintf("%s %d", e.Stage, e.Epoch))
				}
			}
			if metric == "val_accuracy" {
				require.Empty(t, kept)
				require.True(t, res.EndedWithProbe)
				require.Equal(t, 1.0, res.Val.Accuracy)
				require.Len(t, res.Stops, 1)
				require.Equal(t, "probe", res.Stops[0].Reason)
				return
			}
			require.Equal(t, []string{"head 1", "head 2", "ft 1", "ft 2"}, kept, "each epoch lowers the loss")
			require.False(t, res.EndedWithProbe)
			require.Empty(t, res.Stops, "ft beat the best before it at once")
			require.Equal(t, EpochMetrics{Stage: "ft", Epoch: 2}, EpochMetrics{Stage: res.Best.Stage, Epoch: res.Best.Epoch})
			require.InDelta(t, res.Best.ValLoss, res.Val.Loss, 1e-5, "the model is the best epoch's")
		})
	}
}
