package finetune

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

func readCheckpointT(t *testing.T, path string) (map[string][]float64, map[string]string) {
	entries, md, err := readCheckpoint(path)
	require.NoError(t, err)
	out := map[string][]float64{}
	for _, e := range entries {
		out[e.Name] = must[[]float64](t)(e.Value.Float64s())
	}
	return out, md
}

func shapes(t *testing.T, n int) string {
	root := t.TempDir()
	writeShapes(t, root, n, 40, 1)
	return root
}

func stateBytes(t *testing.T, m nn.Module) map[string][]float64 {
	out := map[string][]float64{}
	for _, e := range nn.StateDict(m) {
		out[e.Name] = must[[]float64](t)(e.Value.Float64s())
	}
	return out
}

// TestCachedFeaturesMatchUncached: the head trained on features computed
// once equals the head trained on features recomputed every step.
func TestCachedFeaturesMatchUncached(t *testing.T) {
	root := shapes(t, 12)
	heads := map[string]map[string][]float64{}
	for _, mode := range []string{"on", "off"} {
		cfg := tinyConfig(t, root)
		cfg.Augment.Enabled = false
		cfg.Model.Head = HeadConfig{Pooling: "avg", Hidden: []int{16}, Dropout: 0.3, Init: "random"}
		cfg.Train.CacheFeatures = mode
		cfg.Stages = []Stage{{Name: "head", Epochs: 3, Freeze: "all"}}
		res, err := Train(context.Background(), cfg, Options{})
		require.NoError(t, err)
		if mode == "on" {
			require.Equal(t, "training and validation", res.Cached)
		} else {
			require.Equal(t, "none", res.Cached)
		}
		heads[mode] = stateBytes(t, res.Model.Head)
		nn.Free(res.Model)
	}
	for k, want := range heads["off"] {
		require.InDeltaSlice(t, want, heads["on"][k], 1e-4, k)
	}
}

// TestEarlyStoppingRestoresBest: training stops after patience epochs
// without improvement and the model ends with the best epoch's weights.
func TestEarlyStoppingRestoresBest(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 12))
	cfg.Train.Optimizer = "sgd"
	cfg.Train.LR = 3
	cfg.Train.Schedule = "constant"
	cfg.Train.EarlyStopping = EarlyStopping{Metric: "val_loss", Patience: 2}
	cfg.Stages = []Stage{{Name: "head", Epochs: 12, Freeze: "all"}}
	res, err := Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	defer nn.Free(res.Model)
	require.Less(t, len(res.History), 12, "did not stop early")
	best := res.History[0]
	for _, em := range res.History {
		if em.ValLoss < best.ValLoss {
			best = em
		}
	}
	require.NotEqual(t, best.GlobalEpoch, len(res.History), "the last epoch was the best: the test proves nothing")
	require.Equal(t, best.GlobalEpoch, res.Best.GlobalEpoch)
	// Relative, but these tiny data can be fitted to a loss of 0.
	require.InDelta(t, best.ValLoss, res.Val.Loss, 1e-5*(1+best.ValLoss), "the final model is not the best epoch's")
	require.Equal(t, 2, len(res.History)-best.GlobalEpoch, "patience")
}

// TestResumeReachesSameWeights interrupts a run mid-epoch, resumes it
// from last.safetensors and requires the weights of an uninterrupted run,
// with BatchNorm on batch statistics and on stored ones (the frozen
// prefix of the second stage then runs fused, in the resumed run too).
func TestResumeReachesSameWeights(t *testing.T) {
	root := shapes(t, 12)
	for _, bn := range []string{"train", "frozen"} {
		t.Run(bn, func(t *testing.T) { testResumeReachesSameWeights(t, root, bn) })
	}
}

func testResumeReachesSameWeights(t *testing.T, root, bn string) {
	base := tinyConfig(t, root)
	base.Model.Head = HeadConfig{Pooling: "avg", Hidden: []int{8}, Dropout: 0.2, Init: "random"}
	base.Stages = []Stage{{Name: "head", Epochs: 2, Freeze: "all"}, {Name: "ft", Epochs: 2, Freeze: "layer3", BackboneLRMult: 0.1}}
	base.Train.BatchNorm = bn

	wholeOpts, _ := recorded(base)
	whole, err := Train(context.Background(), base, wholeOpts)
	require.NoError(t, err)
	want := stateBytes(t, whole.Model)
	nn.Free(whole.Model)

	cfg := base
	cfg.Output.Dir = filepath.Join(t.TempDir(), "interrupted")
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	opts, rec := recorded(cfg)
	_, err = Train(ctx, cfg, Options{Recorder: rec, Observer: func(e Event) {
		if e.Kind == EventStep {
			if steps++; steps == 7 { // stage 2, epoch 1, mid-epoch
				cancel()
			}
		}
	}})
	require.ErrorIs(t, err, ErrInterrupted)
	require.ErrorIs(t, err, context.Canceled)
	last := filepath.Join(cfg.Output.Dir, lastCheckpoint)
	require.ErrorContains(t, err, "resume with: finetune run --resume "+shellQuote(last))
	require.NotContains(t, err.Error(), "context canceled")
	require.FileExists(t, last)

	opts.Resume = last
	res, err := Train(context.Background(), cfg, opts)
	require.NoError(t, err)
	defer nn.Free(res.Model)
	require.Len(t, res.History, 4)
	require.Len(t, rec.runs, 2)
	require.Equal(t, 0, rec.runs[0].Resumed)
	require.Equal(t, 2, rec.runs[1].Resumed, "the checkpoint holds stage 1's two epochs")
	require.Equal(t, rec.runs[0].Plan, rec.runs[1].Plan, "a resumed run trains the checkpoint's plan")
	got := stateBytes(t, res.Model)
	for k, w := range want {
		require.Equal(t, w, got[k], "%s differs after resume", k)
	}
	// The best weights may predate the interruption: compare the weights
	// and optimizer state at the very end too.
	endWant, _ := readCheckpointT(t, filepath.Join(base.Output.Dir, lastCheckpoint))
	endGot, _ := readCheckpointT(t, last)
	require.Equal(t, len(endWant), len(endGot))
	for k, w := range endWant {
		require.Equal(t, w, endGot[k], "%s differs at the end after resume", k)
	}
	require.Len(t, rec.epochs, 4, "the record's history continues across the resume")

	changed := cfg
	changed.Train.LR = 0.5
	_, err = Train(context.Background(), changed, opts)
	require.ErrorContains(t, err, "train.lr was 0.001, now 0.5")
}

// TestNonFiniteLossStops: a diverging stage stops with ErrNotFinite and
// the checkpoint of the last good epoch stays readable.
func TestNonFiniteLossStops(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 12))
	cfg.Train.Optimizer = "sgd"
	cfg.Train.Schedule = "constant"
	cfg.Stages = []Stage{{Name: "ok", Epochs: 1, Freeze: "all"}, {Name: "boom", Epochs: 2, Freeze: "none", BackboneLRMult: 1e30}}
	opts, _ := recorded(cfg)
	_, err := Train(context.Background(), cfg, opts)
	require.ErrorIs(t, err, ErrNotFinite)
	last := filepath.Join(cfg.Output.Dir, lastCheckpoint)
	require.ErrorContains(t, err, last)
	_, md, err := readCheckpoint(last)
	require.NoError(t, err)
	require.Contains(t, md["trainer"], `"stage":0`)
}

// TestNonFiniteLossBeforeAnyCheckpoint: a run that diverges in its first
// epoch names no checkpoint, since none was written.
func TestNonFiniteLossBeforeAnyCheckpoint(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 12))
	cfg.Train.Optimizer = "sgd"
	cfg.Train.Schedule = "constant"
	cfg.Stages = []Stage{{Name: "boom", Epochs: 2, Freeze: "none", BackboneLRMult: 1e30}}
	opts, _ := recorded(cfg)
	_, err := Train(context.Background(), cfg, opts)
	require.ErrorIs(t, err, ErrNotFinite)
	require.NotContains(t, err.Error(), lastCheckpoint)
	require.ErrorContains(t, err, "no checkpoint was written yet")
	require.NoFileExists(t, filepath.Join(cfg.Output.Dir, lastCheckpoint))
}

// TestCrossValidation runs 3 folds and checks the folds' validation sets
// are disjoint, stratified and cover the data.
func TestCrossValidation(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 9))
	cfg.CV.Folds = 3
	cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all"}}
	var msgs []string
	_, rec := recorded(cfg)
	res, err := Train(context.Background(), cfg, Options{Recorder: rec, Observer: func(e Event) {
		if e.Kind == EventFold {
			msgs = append(msgs, e.Message)
		}
	}})
	require.NoError(t, err)
	require.Len(t, res.Folds, 3)
	require.Equal(t, []string{"fold 1 of 3: 12 training, 6 validation images",
		"fold 2 of 3: 12 training, 6 validation images", "fold 3 of 3: 12 training, 6 validation images"}, msgs)
	mean, std := res.CVSummary()
	require.True(t, mean >= 0 && mean <= 1 && !math.IsNaN(std))
	require.FileExists(t, filepath.Join(cfg.Output.Dir, "cv.json"))
	require.Equal(t, 2, rec.epochs[len(rec.epochs)-1].Fold, "epochs carry their fold")
	fold := []string{"fold", "run_start", "epoch", "checkpoint last", "checkpoint best", "checkpoint best-delta", "run_end"}
	want := append(append(append(fold, fold...), fold...), "artifact cv.json")
	require.Equal(t, want, rec.seen)
}

func TestCheckpointLoadsForInference(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 8))
	opts, _ := recorded(cfg)
	res, err := Train(context.Background(), cfg, opts)
	require.NoError(t, err)
	defer nn.Free(res.Model)
	require.Len(t, res.Checkpoints, 2)
	full, delta := res.Checkpoints[0], res.Checkpoints[1]
	require.Equal(t, "full", full.Form)
	require.Less(t, delta.Bytes, full.Bytes/10, "the delta checkpoint holds only what changed")
	want := stateBytes(t, res.Model)
	for _, c := range res.Checkpoints {
		m, meta, err := LoadCheckpoint(context.Background(), c.Path, LoadOptions{})
		require.NoError(t, err, c.Path)
		require.Equal(t, []string{"bright", "dark"}, meta.Classes)
		require.Equal(t, res.Plan, meta.Plan, "every checkpoint holds the plan")
		require.Equal(t, want, stateBytes(t, m), c.Form)
		nn.Free(m)
	}
	bad := filepath.Join(t.TempDir(), "x.safetensors")
	require.NoError(t, os.WriteFile(bad, []byte("nonsense"), 0o644))
	_, _, err = LoadCheckpoint(context.Background(), bad, LoadOptions{})
	require.ErrorContains(t, err, "x.safetensors")
}

// TestPrecisionAndLayoutOnCPU runs bf16 (the frozen backbone's fused
// copy in bfloat16, the layers that train in float32) and the
// channels-last path that CUDA uses by default, on the CPU.
func TestPrecisionAndLayoutOnCPU(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 8))
	cfg.Train.Precision = "bf16"
	cfg.Train.ChannelsLast = "on"
	cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all"}, {Name: "ft", Epochs: 1, Freeze: "layer3"}}
	var msgs []string
	res, err := Train(context.Background(), cfg, Options{Observer: func(e Event) { msgs = append(msgs, e.Message) }})
	require.NoError(t, err)
	defer nn.Free(res.Model)
	require.Contains(t, msgs, "computing on cpu, float32, frozen backbone in bfloat16, channels-last")
	require.Contains(t, msgs, "stage head: stem..layer4 run fused, channels-last, in bfloat16, without autograd: frozen with stored BatchNorm statistics")
	for _, h := range res.History {
		require.False(t, math.IsNaN(h.TrainLoss))
	}
	cfg.Train.Precision = "fp16"
	_, err = Train(context.Background(), cfg, Options{})
	require.ErrorContains(t, err, "train.precision: fp16 needs CUDA")
}

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"out/last.safetensors", "out/last.safetensors"},
		{"my runs/last.safetensors", "'my runs/last.safetensors'"},
		{"it's/last", `'it'\''s/last'`},
		{"", "''"},
	} {
		require.Equal(t, tc.want, shellQuote(tc.in))
	}
}
