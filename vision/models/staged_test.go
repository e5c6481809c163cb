package models_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/internal/testref"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
	"github.com/stretchr/testify/require"
)

// TestStagedMatchesTorchvision checks the small member of each family
// against torchvision as TestResNetMatchesTorchvision checks ResNets.
func TestStagedMatchesTorchvision(t *testing.T) {
	dir := testref.Dir(t, "zoo_bn.py")
	for _, arch := range []string{"mobilenet_v3_small", "mobilenet_v3_large", "regnet_y_400mf", "efficientnet_b0", "efficientnet_v2_s"} {
		t.Run(arch, func(t *testing.T) {
			requireParity(t, dir, arch)
			requireStages(t, dir, arch)
		})
	}
}

// requireStages checks that each named stage of arch, with the weights
// of <arch>.pth in eval mode, outputs what the module of torchvision that
// the stage's documentation names outputs.
func requireStages(t *testing.T, dir, arch string) {
	s := torch.NewScope()
	defer s.Close()
	m := must[models.Network](t)(models.Build(arch, 1000))
	defer nn.Free(m)
	must[nn.LoadReport](t)(models.LoadWeights(context.Background(), m, filepath.Join(dir, arch+".pth"), nil))
	want := map[string]*torch.Tensor{}
	for _, e := range must[[]nn.Named[*torch.Tensor]](t)(nn.ReadStateDict(filepath.Join(dir, arch+"-ref.safetensors"))) {
		want[e.Name] = e.Value
	}
	nn.Train(m, false)
	var got map[string]*torch.Tensor
	require.NoError(t, torch.NoGrad(func() error {
		var err error
		got, err = m.Features(want["input"], m.StageNames()...)
		return err
	}))
	for _, name := range m.StageNames() {
		require.Contains(t, want, "stage."+name, "torchvision's module for %s", name)
		requireNear(t, want["stage."+name], got[name], 1e-4, "stage "+name)
	}
}

// TestStagedParameterCounts checks every architecture of the families
// against torchvision's published count.
func TestStagedParameterCounts(t *testing.T) {
	var counts map[string]int64
	raw := must[[]byte](t)(os.ReadFile(filepath.Join(testref.Dir(t, "zoo_bn.py"), "params.json")))
	require.NoError(t, json.Unmarshal(raw, &counts))
	require.Len(t, counts, 15)
	for arch, n := range counts {
		t.Run(arch, func(t *testing.T) {
			m := must[models.Network](t)(models.Build(arch, 1000))
			defer nn.Free(m)
			require.Equal(t, n, must[nn.Summary](t)(nn.Summarize(m)).Total)
		})
	}
}

// TestStagedWeightsAreTorchvisions compares every published weights name,
// and the best, with torchvision's URLs.
func TestStagedWeightsAreTorchvisions(t *testing.T) {
	var urls map[string]map[string]string
	raw := must[[]byte](t)(os.ReadFile(filepath.Join(testref.Dir(t, "zoo_bn.py"), "weights.json")))
	require.NoError(t, json.Unmarshal(raw, &urls))
	for arch, byName := range urls {
		for name, url := range byName {
			if name == "DEFAULT" {
				name = models.BestAlias
			}
			w := must[models.Weights](t)(models.LookupWeights(arch, name))
			require.Equal(t, url, w.URL, "%s %s", arch, name)
			require.Len(t, w.HashPrefix(), 8, w.FileName())
		}
	}
}

// TestStagedHead checks what a network built without a classifier keeps
// and loads: everything of torchvision's but the last Linear, which a
// file's classifier of another size or none leaves alone.
func TestStagedHead(t *testing.T) {
	dir := testref.Dir(t, "zoo_bn.py")
	for _, c := range []struct {
		arch, prefix string
		stages       []string
		dim          int64
	}{
		{"mobilenet_v3_small", "classifier.3.", []string{"stem", "stage1", "stage2", "stage3", "stage4", "lastconv", "pool"}, 1024},
		{"mobilenet_v3_large", "classifier.3.", []string{"stem", "stage1", "stage2", "stage3", "stage4", "stage5", "lastconv", "pool"}, 1280},
		{"regnet_y_400mf", "fc.", []string{"stem", "stage1", "stage2", "stage3", "stage4", "pool"}, 440},
		{"efficientnet_b0", "classifier.1.", []string{"stem", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7", "lastconv", "pool"}, 1280},
		{"efficientnet_v2_s", "classifier.1.", []string{"stem", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "lastconv", "pool"}, 1280},
	} {
		t.Run(c.arch, func(t *testing.T) {
			s := torch.NewScope()
			defer s.Close()
			file := filepath.Join(dir, c.arch+".pth")
			m := must[models.Network](t)(models.Build(c.arch, 0))
			defer nn.Free(m)
			prefix, built := m.Classifier()
			require.Equal(t, c.prefix, prefix)
			require.False(t, built)
			require.Equal(t, c.stages, m.StageNames())
			require.Equal(t, c.dim, m.FeatureDim())
			report := must[nn.LoadReport](t)(models.LoadWeights(context.Background(), m, file, nil))
			require.True(t, report.Clean(), report.String())
			_, err := m.Forward(must[*torch.Tensor](t)(torch.Zeros([]int64{1, 3, 32, 32})))
			require.ErrorContains(t, err, "without a classifier")

			x := must[*torch.Tensor](t)(torch.Randn([]int64{2, 3, 64, 64}))
			nn.Train(m, false)
			f := must[map[string]*torch.Tensor](t)(m.Features(x, c.stages...))
			require.Len(t, f, len(c.stages))
			require.Equal(t, []int64{2, c.dim}, f["pool"].Shape())
			_, err = m.Features(x, "layer9")
			require.ErrorContains(t, err, `unknown stage "layer9"`)

			staged := m.(*models.Staged)
			var inStages int64
			for _, name := range c.stages {
				for _, l := range must[[]nn.Layer](t)(staged.StageLayers(name)) {
					n, _ := nn.CountParameters(l)
					inStages += n
				}
			}
			total, _ := nn.CountParameters(m)
			require.Equal(t, total, inStages, "the stages hold every parameter of a network without classifier")
			_, err = staged.StageLayers("layer9")
			require.ErrorContains(t, err, `unknown stage "layer9"`)

			ten := must[models.Network](t)(models.Build(c.arch, 10))
			defer nn.Free(ten)
			report = must[nn.LoadReport](t)(models.LoadWeights(context.Background(), ten, file, nil))
			require.Len(t, report.Mismatched, 2, report.String())
			require.Equal(t, c.prefix+"weight", report.Mismatched[0].Key)
			require.Equal(t, []int64{2, 10}, must[*torch.Tensor](t)(ten.Forward(x)).Shape())
		})
	}
}

// TestStagedBatchNormsFollowTheirConv: every BatchNorm of each kind of
// Staged block is the BatchNorm of a ConvBN pair, right after a
// convolution without bias of its width, so folding can find them all.
func TestStagedBatchNormsFollowTheirConv(t *testing.T) {
	for _, arch := range []string{"mobilenet_v3_small", "regnet_y_400mf", "efficientnet_b0", "efficientnet_v2_s"} {
		t.Run(arch, func(t *testing.T) {
			m := must[models.Network](t)(models.Build(arch, 10))
			defer nn.Free(m)
			paired := map[*nn.BatchNorm]bool{}
			var norms []*nn.BatchNorm
			require.NoError(t, nn.Walk(m, func(path string, x nn.Module) error {
				switch x := x.(type) {
				case models.ConvBN:
					conv, bn := x.ConvBN()
					require.Nil(t, conv.Parameter("bias"), path)
					require.Equal(t, conv.Config.OutChannels, bn.Config.NumFeatures, path)
					require.Same(t, conv, x.Base().Child("0"), path)
					require.Same(t, bn, x.Base().Child("1"), path)
					paired[bn] = true
				case *nn.BatchNorm:
					norms = append(norms, x)
				}
				return nil
			}))
			require.NotEmpty(t, norms)
			for _, bn := range norms {
				require.True(t, paired[bn])
			}
		})
	}
}
