package models_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finetune-go/finetune/internal/testref"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
	"github.com/stretchr/testify/require"
)

// zooFamilies names, for each family parity-tested through netref.py,
// the fixture script that writes its references and the architecture it
// checks in full (the cheapest member; the others share its code).
var zooFamilies = []struct {
	script, arch string
}{
	{"convnext.py", "convnext_tiny"},
	{"vit.py", "vit_b_16"},
	{"swin.py", "swin_t"},
}

// netRef is <arch>.json as netref.py writes it.
type netRef struct {
	Init []struct {
		Name   string  `json:"name"`
		DType  string  `json:"dtype"`
		Shape  []int64 `json:"shape"`
		SHA256 string  `json:"sha256"`
	} `json:"init"`
	Perturb []struct {
		Name string  `json:"name"`
		Lo   float64 `json:"lo"`
		Hi   float64 `json:"hi"`
	} `json:"perturb"`
}

// TestZooMatchesTorchvision: same seed → same initial state dict, key for
// key and bit for bit; same weights and input → same logits in eval mode,
// in training mode after the same seed (stochastic depth and dropout draw
// alike), and the same gradients.
func TestZooMatchesTorchvision(t *testing.T) {
	for _, f := range zooFamilies {
		t.Run(f.arch, func(t *testing.T) {
			dir := testref.Dir(t, f.script)
			var ref netRef
			raw := must[[]byte](t)(os.ReadFile(filepath.Join(dir, f.arch+".json")))
			require.NoError(t, json.Unmarshal(raw, &ref))
			s := torch.NewScope()
			defer s.Close()
			torch.ManualSeed(0)
			m := must[models.Network](t)(models.Build(f.arch, 1000))
			defer nn.Free(m)
			readZooMeta(t, f.script).require(t, m)
			prefix, built := m.Classifier()
			require.True(t, built)
			head := must[nn.Module](t)(nn.Find(m, strings.TrimSuffix(prefix, ".")))
			require.Equal(t, []int64{1000, m.FeatureDim()}, head.Base().Parameter("weight").Shape(), "the classifier's Linear")
			own := nn.StateDict(m)
			require.Len(t, own, len(ref.Init))
			for i, r := range ref.Init {
				require.Equal(t, r.Name, own[i].Name, "state-dict key order")
				require.Equal(t, r.Shape, own[i].Value.Shape(), r.Name)
				require.Equal(t, r.DType, own[i].Value.DType().String(), r.Name)
				sum := sha256.Sum256(must[[]byte](t)(own[i].Value.Bytes()))
				require.Equal(t, r.SHA256, hex.EncodeToString(sum[:]), "initial %s", r.Name)
			}

			torch.ManualSeed(1)
			params := map[string]*torch.Tensor{}
			for _, p := range nn.NamedParameters(m) {
				params[p.Name] = p.Value
			}
			require.NoError(t, torch.NoGrad(func() error {
				for _, p := range ref.Perturb {
					if err := params[p.Name].Uniform_(p.Lo, p.Hi, nil); err != nil {
						return err
					}
				}
				return nil
			}))

			want := map[string]*torch.Tensor{}
			for _, e := range must[[]nn.Named[*torch.Tensor]](t)(nn.ReadStateDict(filepath.Join(dir, f.arch+"-ref.safetensors"))) {
				want[e.Name] = e.Value
			}
			x := want["input"]
			nn.Train(m, false)
			require.NoError(t, torch.NoGrad(func() error {
				logits, err := m.Forward(x)
				if err != nil {
					return err
				}
				requireNear(t, want["eval_logits"], logits, 1e-4, "eval logits")
				stages, err := m.Features(x, m.StageNames()...)
				if err != nil {
					return err
				}
				require.Len(t, stages, len(m.StageNames()))
				require.Equal(t, []int64{x.Shape()[0], m.FeatureDim()}, stages["pool"].Shape())
				return nil
			}))

			nn.Train(m, true)
			torch.ManualSeed(3)
			logits := must[*torch.Tensor](t)(m.Forward(x))
			requireNear(t, want["train_logits"], logits, 1e-4, "train logits")
			loss := must[*torch.Tensor](t)(must[*torch.Tensor](t)(logits.Mul(want["cot"])).Sum())
			require.NoError(t, loss.Backward())
			grads := 0
			for name, w := range want {
				if key, ok := strings.CutPrefix(name, "grad."); ok {
					grads++
					require.Contains(t, params, key)
					requireNear(t, w, must[*torch.Tensor](t)(params[key].Grad()), 1e-3, "gradient of "+key)
				}
			}
			require.NotZero(t, grads)
		})
	}
}

// zooMeta is meta.json as netref.py writes it: each architecture's
// parameter count and published weights.
type zooMeta map[string]struct {
	Params  int64             `json:"params"`
	Weights map[string]string `json:"weights"`
}

func readZooMeta(t *testing.T, script string) zooMeta {
	var meta zooMeta
	raw := must[[]byte](t)(os.ReadFile(filepath.Join(testref.Dir(t, script), "meta.json")))
	require.NoError(t, json.Unmarshal(raw, &meta))
	return meta
}

// require checks m's parameter count against torchvision's and the
// URLs of its published weights.
func (z zooMeta) require(t *testing.T, m models.Network) {
	want, ok := z[m.ArchName()]
	require.True(t, ok, "%s in meta.json", m.ArchName())
	for name, url := range want.Weights {
		require.Equal(t, url, must[models.Weights](t)(models.LookupWeights(m.ArchName(), name)).URL)
	}
	sum := must[nn.Summary](t)(nn.Summarize(m))
	require.Equal(t, want.Params, sum.Total)
	require.Equal(t, want.Params, sum.Trainable)
}

// TestZooMeta checks the other architectures of each family (the one
// TestZooMatchesTorchvision builds is checked there) against torchvision's
// parameter count and weights: building is enough, no forward.
func TestZooMeta(t *testing.T) {
	for _, f := range zooFamilies {
		meta := readZooMeta(t, f.script)
		for arch := range meta {
			if arch == f.arch {
				continue
			}
			t.Run(arch, func(t *testing.T) {
				require.Contains(t, models.Networks(), arch)
				m := must[models.Network](t)(models.Build(arch, 1000))
				defer nn.Free(m)
				meta.require(t, m)
			})
		}
	}
}

// TestConvNeXtHeadless: a ConvNeXt built without classes keeps the
// classifier's LayerNorm, loads it from a 1000-class file and returns the
// pooled features through it.
func TestConvNeXtHeadless(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	full := must[*models.ConvNeXt](t)(models.NewConvNeXt("convnext_tiny", 1000))
	defer nn.Free(full)
	require.NoError(t, torch.NoGrad(func() error { return full.Head.Children()[0].Value.Base().Parameter("weight").Uniform_(0.5, 1.5, nil) }))
	path := filepath.Join(t.TempDir(), "convnext_tiny.safetensors")
	require.NoError(t, nn.WriteSafetensors(path, nn.StateDict(full), nil))

	bare := must[*models.ConvNeXt](t)(models.NewConvNeXt("convnext_tiny", 0))
	defer nn.Free(bare)
	prefix, built := bare.Classifier()
	require.Equal(t, "classifier.2.", prefix)
	require.False(t, built)
	report := must[nn.LoadReport](t)(models.LoadWeights(context.Background(), bare, path, nil))
	require.True(t, report.Clean(), report.String())
	_, err := bare.Forward(must[*torch.Tensor](t)(torch.Zeros([]int64{1, 3, 32, 32})))
	require.ErrorContains(t, err, "without a classifier")

	nn.Train(full, false)
	nn.Train(bare, false)
	x := must[*torch.Tensor](t)(torch.Randn([]int64{1, 3, 32, 32}))
	want := must[map[string]*torch.Tensor](t)(full.Features(x, "pool"))["pool"]
	got := must[map[string]*torch.Tensor](t)(bare.Features(x, "stage2", "pool"))
	require.Len(t, got, 2)
	require.Equal(t, []int64{1, 192, 4, 4}, got["stage2"].Shape())
	requireNear(t, want, got["pool"], 0, "pooled features")

	_, err = bare.Features(x, "stage5")
	require.ErrorContains(t, err, `unknown stage "stage5"`)
}
