package finetune

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/finetune-go/finetune/finetune/shift"
	"os"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// pretrained writes the backbone of a resnet18 whose BatchNorm statistics
// describe writeShapes images at 32 pixels, as pretrained weights do for
// their source data, and returns the file.
func pretrained(t *testing.T, data string) string { return pretrainedNet(t, data, "resnet18") }

// pretrainedNet is pretrained for a network of another family.
func pretrainedNet(t *testing.T, data, arch string) string {
	cfg := tinyConfig(t, data)
	cfg.Model.Arch = arch
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
		cfg.Train.Precision = "auto"
		cfg.Probe, cfg.Search = true, "quick"
		cfg.Augment.Enabled = false
		cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all"}}
		var msgs []string
		_, rec := recorded(cfg)
		res, err := Train(context.Background(), cfg, Options{Recorder: rec, Observer: func(e Event) { msgs = append(msgs, e.Message) }})
		require.NoError(t, err)
		require.Equal(t, c.want, res.BatchNorm, "%v", msgs)
		decided := map[string]string{}
		for _, d := range res.Plan.Decisions {
			decided[d.Key] = d.Value
		}
		require.Equal(t, c.want, decided["train.batchnorm"])
		require.Equal(t, fmt.Sprintf("%.4f", *res.ProbeAccuracy), decided["probe"])
		require.Equal(t, fmt.Sprint(res.Plan.Stages[0].LR), decided["train.lr"], "the stage trains at the searched rate")
		require.Equal(t, map[bool]string{true: "bf16", false: "fp32"}[cpuBF16() != ""], decided["train.precision"])
		require.NotNil(t, res.ProbeAccuracy)
		require.FileExists(t, filepath.Join(cfg.Output.Dir, "shift.json"))
		require.FileExists(t, filepath.Join(cfg.Output.Dir, "search.json"))
		nn.Free(res.Model)
	}
}

// TestShiftBeyondResNets: train.batchnorm: auto on a pretrained network
// of another BatchNorm family decides from the shift measured on it,
// summarised by the network's own stages, and inverted images shift it
// more than the source's.
func TestShiftBeyondResNets(t *testing.T) {
	source := shapes(t, 12)
	weights := pretrainedNet(t, source, "mobilenet_v3_small")
	negatives := t.TempDir()
	writeShapes(t, negatives, 12, 40, 1)
	invertFolder(t, negatives)
	var shifts []float64
	for _, data := range []string{source, negatives} {
		cfg := tinyConfig(t, data)
		cfg.Model.Arch, cfg.Model.Weights = "mobilenet_v3_small", weights
		cfg.Train.BatchNorm = "auto"
		cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all"}}
		res, err := Train(context.Background(), cfg, Options{})
		require.NoError(t, err)
		defer res.Model.Close()
		var why string
		for _, d := range res.Plan.Decisions {
			if d.Key == "train.batchnorm" {
				why = d.Reason
			}
		}
		require.Contains(t, why, "BatchNorm shift", "decided from the measurement")
		report, n, err := MeasureShift(context.Background(), cfg, data, nil)
		require.NoError(t, err)
		require.Equal(t, 24, n)
		var names []string
		for _, st := range report.Stages {
			names = append(names, st.Name)
			require.Positive(t, st.Layers)
		}
		require.Equal(t, []string{"stem", "stage1", "stage2", "stage3", "stage4", "lastconv"}, names)
		for _, l := range report.Layers {
			require.Contains(t, names, l.Stage, "%s", l.Path)
		}
		mode, _ := shift.ChooseBN(report)
		require.Equal(t, mode, res.BatchNorm)
		shifts = append(shifts, report.Shift())
	}
	require.Greater(t, shifts[1], shifts[0], "inverted images shift the statistics more than the source's")
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

// TestHeadInitProbe: with model.head.init: probe the head starts as the
// linear probe (the probe recipe's head), with or without the feature
// cache; with random it does not.
func TestHeadInitProbe(t *testing.T) {
	data := shapes(t, 12)
	weights := pretrained(t, data)
	headOf := func(edit func(*Config)) map[string][]float64 {
		cfg := tinyConfig(t, data)
		cfg.Model.Weights = weights
		cfg.Augment.Enabled = false
		edit(&cfg)
		res, err := Train(context.Background(), cfg, Options{})
		require.NoError(t, err)
		defer nn.Free(res.Model)
		return stateBytes(t, res.Model.Head)
	}
	probe := headOf(func(c *Config) { c.Recipe = "linear-probe" })
	// A learning rate this small leaves the starting point in place.
	for _, cache := range []string{"auto", "off"} {
		got := headOf(func(c *Config) {
			c.Model.Head.Init, c.Train.CacheFeatures = "probe", cache
			c.Train.LR, c.Stages = 1e-12, []Stage{{Name: "head", Epochs: 1, Freeze: "all"}}
		})
		require.Equal(t, len(probe), len(got))
		for name, want := range probe {
			require.InDeltaSlice(t, want, got[name], 1e-5, "cache_features %s: %s", cache, name)
		}
	}
	random := headOf(func(c *Config) {
		c.Train.LR, c.Stages = 1e-12, []Stage{{Name: "head", Epochs: 1, Freeze: "all"}}
	})
	require.NotEqual(t, probe, random)
}

// TestProbeFallback: when training does worse on validation than the
// probe it started from, the run ends with the probe's model, also after
// an interruption and resume.
func TestProbeFallback(t *testing.T) {
	data := shapes(t, 12)
	weights := pretrained(t, data)
	cfg := tinyConfig(t, data)
	cfg.Model.Weights = weights
	cfg.Augment.Enabled = false
	cfg.Model.Head.Init, cfg.ProbeFallback = "probe", true
	// Targets smoothed to almost uniform, followed by plain SGD at a
	// learning rate this large, throw the head off the probe's solution:
	// the trained model is worse.
	cfg.Train.Optimizer, cfg.Train.Momentum, cfg.Train.LR = "sgd", 0, 1e4
	cfg.Train.Schedule, cfg.Train.WeightDecay, cfg.Train.LabelSmoothing = "constant", 0, 0.999
	cfg.Train.GradClip = 1 // keeps the steps finite
	// The second stage trains layer4, which the probe's model must not
	// keep.
	cfg.Stages = []Stage{{Name: "head", Epochs: 2, Freeze: "all"}, {Name: "ft", Epochs: 1, Freeze: "layer3", BackboneLRMult: 1e-7}}
	probeModel := func() map[string][]float64 {
		c := cfg
		c.Recipe = "linear-probe"
		c.Output.Dir = filepath.Join(t.TempDir(), "probe")
		res, err := Train(context.Background(), c, Options{})
		require.NoError(t, err)
		defer nn.Free(res.Model)
		return stateBytes(t, res.Model)
	}()
	check := func(res *Result) {
		require.True(t, res.EndedWithProbe)
		require.NotNil(t, res.ProbeAccuracy)
		require.Greater(t, *res.ProbeAccuracy, res.Best.ValAccuracy)
		require.InDelta(t, *res.ProbeAccuracy, res.Val.Accuracy, 1e-9, "the final model is the probe's")
		got := stateBytes(t, res.Model)
		require.Equal(t, len(probeModel), len(got))
		for name, want := range probeModel {
			require.Equal(t, want, got[name], "%s differs from the probe's model", name)
		}
	}
	opts, _ := recorded(cfg)
	res, err := Train(context.Background(), cfg, opts)
	require.NoError(t, err)
	check(res)
	nn.Free(res.Model)
	raw, err := os.ReadFile(filepath.Join(cfg.Output.Dir, "result.json"))
	require.NoError(t, err)
	var summary map[string]any
	require.NoError(t, json.Unmarshal(raw, &summary))
	require.Equal(t, true, summary["ended_with_probe"])

	cfg.Output.Dir = filepath.Join(t.TempDir(), "interrupted")
	ctx, cancel := context.WithCancel(context.Background())
	_, rec := recorded(cfg)
	_, err = Train(ctx, cfg, Options{Recorder: rec, Observer: func(e Event) {
		if e.Kind == EventStep {
			cancel()
		}
	}})
	require.ErrorIs(t, err, ErrInterrupted)
	res, err = Train(context.Background(), cfg, Options{Recorder: rec, Resume: filepath.Join(cfg.Output.Dir, lastCheckpoint)})
	require.NoError(t, err)
	defer nn.Free(res.Model)
	check(res)
}
