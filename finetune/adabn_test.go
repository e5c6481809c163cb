package finetune

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/stretchr/testify/require"
)

// TestAdaBNSample: a run adapts the BatchNorm statistics on adaptSample
// training images chosen by its seed, records the choice in the plan, and
// ends with the statistics AdaptBN gives on that sample; another seed
// gives other statistics.
func TestAdaBNSample(t *testing.T) {
	train := t.TempDir()
	writeShapes(t, train, adaptSample/2+20, 16, 1)
	val := t.TempDir()
	writeShapes(t, val, 4, 16, 2)
	stats := map[uint64][]float64{}
	for _, seed := range []uint64{5, 6} {
		cfg := tinyConfig(t, train)
		cfg.Data.Val = val
		cfg.Data.ImageSize, cfg.Data.Resize = 16, 16
		cfg.Seed = seed
		cfg.Train.BatchNorm = "adapt"
		cfg.Train.StepsPerEpoch = 1
		cfg.Stages = []Stage{{Name: "head", Epochs: 1, Freeze: "all"}}
		cfg.Output.Dir = filepath.Join(t.TempDir(), "run")
		res, err := Train(context.Background(), cfg, Options{})
		require.NoError(t, err)
		defer nn.Free(res.Model)
		i := slices.IndexFunc(res.Plan.Decisions, func(d Decision) bool { return d.Key == "adabn" })
		require.GreaterOrEqual(t, i, 0, "the sample is a decision of the plan")
		require.Equal(t, fmt.Sprintf("%d training images", adaptSample), res.Plan.Decisions[i].Value)

		// The same AdaBN pass over the seed's sample, on a model built as
		// the run built its own.
		d := must[*Data](t)(OpenData(cfg))
		sample := seededSample(seed, 0xada, d.Train, adaptSample)
		require.Len(t, sample, adaptSample)
		m := must[*Model](t)(buildModel(context.Background(), cfg, 2, nil, func(string, ...any) {}))
		defer m.Close()
		require.NoError(t, m.SetBNMode("adapt"))
		at := modelPlacement(m).inference()
		loader := must[*data.BatchLoader](t)(d.loader(cfg, at, d.TrainSet, sample, fixedLoader, t.Logf, nil))
		require.NoError(t, AdaptBN(context.Background(), m, onDevice(context.Background(), at, loader)))
		loader.Close()
		want, got := stateBytes(t, m.Backbone), stateBytes(t, res.Model.Backbone)
		for _, bn := range m.backboneBNs() {
			for _, buf := range []string{"running_mean", "running_var"} {
				name := bn.Name + "." + buf
				require.Equal(t, want[name], got[name], "seed %d: %s", seed, name)
				stats[seed] = append(stats[seed], got[name]...)
			}
		}
	}
	require.NotEqual(t, stats[5], stats[6], "the sample follows the seed")
}
