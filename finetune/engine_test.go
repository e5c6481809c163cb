package finetune

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// randomBackbone writes the backbone of a fresh resnet18 (seeded) as
// pretrained weights to path.
func randomBackbone(t *testing.T, path string, seed uint64) {
	torch.ManualSeed(seed)
	m := must[*Model](t)(NewModel("resnet18", HeadConfig{Pooling: "avg", Init: "random"}, 2, 32))
	defer nn.Free(m)
	require.NoError(t, nn.WriteSafetensors(path, nn.StateDict(m.Backbone), nil))
}

// TestImagesReachTheModelThroughOnePlace: a channels-last model refuses
// images in another layout or type (or on another device), and every engine
// path that hands it images (the shift measurement, AdaBN, the features
// cached and those of the probe, the activations cached at the freeze
// point and the steps that continue from them, the training steps,
// validation, the train accuracy, Evaluate, Predict) goes through
// placement.input, the one place that puts them where the model is.
func TestImagesReachTheModelThroughOnePlace(t *testing.T) {
	m := must[*Model](t)(NewModel("resnet18", HeadConfig{Pooling: "avg", Init: "random"}, 2, 32))
	require.NoError(t, nn.To(m, torch.CPU, torch.ChannelsLast))
	m.Train(false)
	x := must[*torch.Tensor](t)(torch.Randn([]int64{2, 3, 32, 32}))
	for _, fused := range []torch.DType{0, torch.Float32, torch.BFloat16} {
		if fused != 0 { // the entry points through a fused frozen prefix
			require.NoError(t, m.SetBNMode("frozen"))
			require.NoError(t, m.Freeze("layer3", "follow"))
			require.NoError(t, m.UseFused(torch.ChannelsLast, fused))
			require.NotNil(t, m.fused)
		}
		entries := map[string]func(*torch.Tensor) (*torch.Tensor, error){
			"Forward": m.Forward, "Features": m.Features, "FrozenFeatures": m.FrozenFeatures, "TrainFeatures": m.TrainFeatures,
		}
		if fused != 0 {
			entries["PrefixActivations"] = m.PrefixActivations
			// The activations of images placed, then moved out of the
			// model's layout, as a batch gathered from the cache is.
			// Activations of images of another type keep that type.
			entries["TrainFromPrefix"] = func(x *torch.Tensor) (*torch.Tensor, error) {
				x32 := must[*torch.Tensor](t)(x.ToDType(torch.Float32))
				h := must[*torch.Tensor](t)(m.PrefixActivations(must[*torch.Tensor](t)(modelPlacement(m).input(x32))))
				if cl := must[bool](t)(x.IsContiguous(torch.ChannelsLast)); !cl {
					h = must[*torch.Tensor](t)(h.ContiguousAs(torch.ContiguousFormat))
				} else {
					h = must[*torch.Tensor](t)(modelPlacement(m).input(h))
				}
				if x.DType() != torch.Float32 {
					h = must[*torch.Tensor](t)(h.ToDType(x.DType()))
				}
				return m.TrainFromPrefix(h)
			}
		}
		for name, f := range entries {
			_, err := f(x)
			require.ErrorContains(t, err, "not in the model's channels-last layout", name)
			_, err = f(must[*torch.Tensor](t)(modelPlacement(m).input(x)))
			require.NoError(t, err, name)
			// Images stay float32 up to the model; a bfloat16 copy casts
			// them itself.
			_, err = f(must[*torch.Tensor](t)(must[*torch.Tensor](t)(modelPlacement(m).input(x)).ToDType(torch.BFloat16)))
			require.ErrorContains(t, err, "images of type", name)
		}
	}
	m.StopFused()
	nn.Free(m)

	root := shapes(t, 8)
	weights := filepath.Join(t.TempDir(), "backbone.safetensors")
	randomBackbone(t, weights, 5)
	for bn, precision := range map[string]string{"auto": "fp32", "adapt": "bf16"} {
		cfg := tinyConfig(t, root)
		cfg.Model.Weights = weights
		cfg.Train.ChannelsLast = "on"
		cfg.Train.BatchNorm = bn
		cfg.Train.Precision = precision
		cfg.Probe = true
		cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all"}, {Name: "ft", Epochs: 1, Freeze: "layer3", BackboneLRMult: 0.1}}
		res, err := Train(context.Background(), cfg, Options{})
		require.NoError(t, err, "train.batchnorm %s", bn)
		require.NotNil(t, res.ProbeAccuracy)
		require.Positive(t, res.Plan.Stages[1].ActivationViews, "the ft stage trains from cached activations")
		meta := Meta{Config: cfg, Classes: res.Classes}
		_, err = Evaluate(context.Background(), res.Model, meta, root, "error")
		require.NoError(t, err)
		files := must[[]string](t)(ImageFiles([]string{root}))
		_, err = Predict(context.Background(), res.Model, meta, files[:3], PredictOptions{TTA: true})
		require.NoError(t, err)
		nn.Free(res.Model)
	}
}

// TestLastCheckpointIsTheLastEpoch: last.safetensors holds the weights
// of the last epoch, not the best ones the run ends with.
func TestLastCheckpointIsTheLastEpoch(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 12))
	cfg.Train.Optimizer, cfg.Train.LR, cfg.Train.Schedule = "sgd", 3, "constant"
	cfg.Train.EarlyStopping = EarlyStopping{Metric: "val_loss", Patience: 2}
	cfg.Stages = []Stage{{Name: "head", Epochs: 12, Freeze: "all"}}
	opts, _ := recorded(cfg)
	res, err := Train(context.Background(), cfg, opts)
	require.NoError(t, err)
	defer nn.Free(res.Model)
	require.NotEqual(t, res.Best.GlobalEpoch, len(res.History), "the last epoch was the best: the test proves nothing")
	best := stateBytes(t, res.Model)
	for name, wantBest := range map[string]bool{lastCheckpoint: false, "best.safetensors": true} {
		m, _, err := LoadCheckpoint(context.Background(), filepath.Join(cfg.Output.Dir, name), LoadOptions{})
		require.NoError(t, err)
		got := stateBytes(t, m)
		nn.Free(m)
		if wantBest {
			require.Equal(t, best, got, name)
		} else {
			require.NotEqual(t, best, got, "%s holds the best epoch's weights", name)
		}
	}
}

// TestResumeRefusesChangedData: files removed or changed after an
// interruption stop the resume, naming them, unless allowed.
func TestResumeRefusesChangedData(t *testing.T) {
	root := shapes(t, 12)
	cfg := tinyConfig(t, root)
	ctx, cancel := context.WithCancel(context.Background())
	opts, rec := recorded(cfg)
	opts.Observer = func(e Event) {
		if e.Kind == EventStep {
			cancel()
		}
	}
	_, err := Train(ctx, cfg, opts)
	require.ErrorIs(t, err, ErrInterrupted)
	require.Equal(t, []string{"run_start", "checkpoint last"}, rec.seen, "an interrupted run's record ends with the resume checkpoint")
	for _, f := range []string{"bright/000.png", "bright/001.png"} {
		require.NoError(t, os.Remove(filepath.Join(root, f)))
	}
	require.NoError(t, invertPNG(filepath.Join(root, "dark/005.png")))
	resume := Options{Recorder: rec, Resume: filepath.Join(cfg.Output.Dir, lastCheckpoint)}
	_, err = Train(context.Background(), cfg, resume)
	require.ErrorContains(t, err, "data.train: 2 files removed since the checkpoint: bright/000.png, bright/001.png; "+
		"1 files changed since the checkpoint: dark/005.png")
	resume.AllowDataChange = true
	res, err := Train(context.Background(), cfg, resume)
	require.NoError(t, err)
	nn.Free(res.Model)
}

// TestDeltaFindsItsBase: a delta checkpoint over weights given as
// ../base.safetensors loads from another working directory, and after
// the run folder and the weights moved together; other weights are
// refused, and missing ones named with where they were looked for.
func TestDeltaFindsItsBase(t *testing.T) {
	data := shapes(t, 8)
	work := t.TempDir()
	randomBackbone(t, filepath.Join(work, "base.safetensors"), 5)
	runs := filepath.Join(work, "runs")
	require.NoError(t, os.Mkdir(runs, 0o755))
	t.Chdir(runs)
	cfg := tinyConfig(t, data)
	cfg.Model.Weights = filepath.Join("..", "base.safetensors")
	cfg.Output.Dir = "r1"
	opts, _ := recorded(cfg)
	res, err := Train(context.Background(), cfg, opts)
	require.NoError(t, err)
	want := stateBytes(t, res.Model)
	nn.Free(res.Model)

	load := func(path string, o LoadOptions) error {
		m, _, err := LoadCheckpoint(context.Background(), path, o)
		if err != nil {
			return err
		}
		defer nn.Free(m)
		require.Equal(t, want, stateBytes(t, m), path)
		return nil
	}
	t.Chdir(t.TempDir())
	require.NoError(t, load(filepath.Join(runs, "r1", "best-delta.safetensors"), LoadOptions{}))

	moved := filepath.Join(t.TempDir(), "moved")
	copyTree(t, work, moved)
	require.NoError(t, os.RemoveAll(work))
	delta := filepath.Join(moved, "runs", "r1", "best-delta.safetensors")
	require.NoError(t, load(delta, LoadOptions{}))
	require.NoError(t, load(delta, LoadOptions{Weights: filepath.Join(moved, "base.safetensors")}))

	other := filepath.Join(t.TempDir(), "other.safetensors")
	randomBackbone(t, other, 6)
	err = load(delta, LoadOptions{Weights: other})
	require.ErrorContains(t, err, other)
	require.ErrorContains(t, err, filepath.Join(work, "base.safetensors"))

	require.NoError(t, os.Remove(filepath.Join(moved, "base.safetensors")))
	err = load(delta, LoadOptions{})
	require.ErrorContains(t, err, "tried "+filepath.Join(moved, "base.safetensors")+" (missing), "+filepath.Join(work, "base.safetensors")+" (missing)")
}

func copyTree(t *testing.T, from, to string) {
	require.NoError(t, filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := must[string](t)(filepath.Rel(from, path))
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	}))
}

// failingRecorder fails on the first checkpoint.
type failingRecorder struct{ err error }

func (f failingRecorder) Record(e Event) error {
	if e.Kind == EventCheckpoint {
		return f.err
	}
	return nil
}

// TestRecorderErrorStopsTheRun: a record that cannot be kept stops the
// run, with the Recorder's error.
func TestRecorderErrorStopsTheRun(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 8))
	full := errors.New("disk full")
	var epochs int
	_, err := Train(context.Background(), cfg, Options{Recorder: failingRecorder{full}, Observer: func(e Event) {
		if e.Kind == EventEpoch {
			epochs++
		}
	}})
	require.ErrorIs(t, err, full)
	require.ErrorContains(t, err, "recording the run: checkpoint: disk full")
	require.Equal(t, 1, epochs, "the run stopped at the first checkpoint")
}
