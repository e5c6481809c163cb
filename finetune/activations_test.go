package finetune

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/internal/plural"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// TestCachedActivationsTrainAsTheImages: a stage that trains layer4 on
// activations cached at its freeze point computes, epoch by epoch, the
// losses and accuracies of the stage that runs the frozen prefix on the
// same augmented views every step; and its plan says how many views it
// keeps and why.
func TestCachedActivationsTrainAsTheImages(t *testing.T) {
	root := shapes(t, 8)
	weights := filepath.Join(t.TempDir(), "backbone.safetensors")
	randomBackbone(t, weights, 5)
	train := func(cache string, augment bool) *Result {
		cfg := tinyConfig(t, root)
		cfg.Model.Weights = weights
		cfg.Augment.Enabled = augment
		cfg.Train.CacheActivations = cache
		cfg.Train.EarlyStopping.Patience = 0
		cfg.Stages = []Stage{{Name: "ft", Epochs: 2, Freeze: "layer3", BackboneLRMult: 0.5}}
		res, err := Train(context.Background(), cfg, Options{})
		require.NoError(t, err, "cache_activations %s", cache)
		nn.Free(res.Model)
		return res
	}
	for _, augment := range []bool{true, false} {
		off, on := train("off", augment), train("auto", augment)
		require.Zero(t, off.Plan.Stages[0].ActivationViews)
		views := 1
		if augment {
			views = 2 // a view per epoch: both the uncached stage's views
		}
		require.Equal(t, views, on.Plan.Stages[0].ActivationViews)
		var decision Decision
		for _, d := range on.Plan.Decisions {
			if d.Key == "stages[0].cache_activations" {
				decision = d
			}
		}
		require.Contains(t, decision.Reason, "cache layer3 activations: "+plural.Count(views, "view")+" × ")
		require.Contains(t, decision.Reason, " × 4.0 KiB = ", "resnet18's layer3 at 32 pixels: 256×2×2 floats")
		require.Len(t, on.History, 2)
		for i, want := range off.History {
			got := on.History[i]
			require.InEpsilon(t, want.TrainLoss, got.TrainLoss, 1e-5, "augment %v, epoch %d", augment, i+1)
			require.InEpsilon(t, want.ValLoss, got.ValLoss, 1e-5, "augment %v, epoch %d", augment, i+1)
			require.Equal(t, want.TrainStepAccuracy, got.TrainStepAccuracy, "augment %v, epoch %d", augment, i+1)
			require.Equal(t, want.ValAccuracy, got.ValAccuracy, "augment %v, epoch %d", augment, i+1)
		}
	}
}

// TestActivationViews: as many views as passes fit in the budget, one
// without augmentation, none when one view does not fit.
func TestActivationViews(t *testing.T) {
	const mib = 1 << 20
	// ResNet50's layer3 at 224 pixels: 1024×14×14 floats, 784 KiB an image.
	perImage := int64(4 * 1024 * 14 * 14)
	for _, tc := range []struct {
		budget    int64
		images    int
		passes    int
		augmented bool
		want      int
	}{
		{64 << 30, 1600, 15, true, 15},           // 1.2 GiB a view: all 15 fit in 64 GiB
		{8 << 30, 1600, 15, true, 6},             // 8 GiB: 6 views of 1.2 GiB
		{8 << 30, 1600, 15, false, 1},            // without augmentation one view is every pass
		{1 << 30, 1600, 15, true, 0},             // not one view: the prefix runs every step
		{1 << 30, 1600, 15, false, 0},            //
		{100 * mib, 100, 3, true, 1},             // 77 MiB a view
		{200 * mib, 100, 3, true, 2},             //
		{200 * mib, 100, 1, true, 1},             // one pass needs one view
		{200 * mib, 0, 3, true, 0},               // no image
		{int64(2) * perImage * 8, 8, 5, true, 2}, // exactly two views
	} {
		require.Equal(t, tc.want, activationViews(tc.budget, perImage, tc.images, tc.passes, tc.augmented), "%+v", tc)
	}
}

// TestPrefixShape: the shape the budget is computed from is the fused
// prefix's output, at every freeze point that leaves layers to train.
func TestPrefixShape(t *testing.T) {
	torch.ManualSeed(1)
	m := must[*Model](t)(NewModel("resnet18", HeadConfig{Pooling: "avg", Init: "random"}, 2, 40))
	defer m.Close()
	require.NoError(t, m.SetBNMode("frozen"))
	x := must[*torch.Tensor](t)(torch.Randn([]int64{1, 3, 40, 40}))
	for n, point := range []string{"stem", "layer1", "layer2", "layer3"} {
		require.NoError(t, m.Freeze(point, "follow"))
		require.Equal(t, n+1, m.FixedPrefix())
		require.NoError(t, m.UseFused(torch.ContiguousFormat, torch.Float32))
		h := must[*torch.Tensor](t)(m.PrefixActivations(x))
		shape := m.prefixShape(n+1, 40)
		require.Equal(t, []int64{1, shape[0], shape[1], shape[2]}, h.Shape(), point)
	}
}

// TestMemAvailable reads a Linux meminfo file and names a bad one.
func TestMemAvailable(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "meminfo")
	require.NoError(t, os.WriteFile(good, []byte("MemTotal:       65536000 kB\nMemFree:  100 kB\nMemAvailable:   32768000 kB\n"), 0o644))
	require.Equal(t, int64(32768000)<<10, must[int64](t)(memAvailable(good)))
	bad := filepath.Join(dir, "old")
	require.NoError(t, os.WriteFile(bad, []byte("MemTotal:       65536000 kB\n"), 0o644))
	_, err := memAvailable(bad)
	require.ErrorContains(t, err, bad+": no MemAvailable line")
	_, err = memAvailable(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
