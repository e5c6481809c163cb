package models_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/finetune-go/finetune/internal/testref"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testref.Cleanup()
	os.Exit(code)
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

// requireNear compares two tensors elementwise with a tolerance relative
// to the reference's largest magnitude, as gradients span many scales.
func requireNear(t *testing.T, want, got *torch.Tensor, rtol float64, what string) {
	t.Helper()
	require.Equal(t, want.Shape(), got.Shape(), what)
	w, g := must[[]float64](t)(want.Float64s()), must[[]float64](t)(got.Float64s())
	scale := 0.0
	for _, v := range w {
		scale = math.Max(scale, math.Abs(v))
	}
	for i := range w {
		if math.Abs(w[i]-g[i]) > rtol*(math.Abs(w[i])+scale*1e-2) {
			t.Fatalf("%s: element %d = %v, torchvision %v", what, i, g[i], w[i])
		}
	}
}

// TestResNetMatchesTorchvision: same seed → same initial weights, bit for
// bit; same weights and input → same logits in eval and train mode, same
// gradients for every parameter, same running statistics.
func TestResNetMatchesTorchvision(t *testing.T) {
	dir := testref.Dir(t, "resnet.py")
	for _, arch := range []string{"resnet18", "resnet50"} {
		t.Run(arch, func(t *testing.T) { requireParity(t, dir, arch) })
	}
}

// requireParity builds arch after torch.ManualSeed(0) and compares it
// with the reference files <arch>.pth and <arch>-ref.safetensors in dir:
// initial state bit for bit, then, with the reference's weights, logits
// in eval and train mode (the train pass after seed 2, for dropout and
// stochastic depth), every parameter's gradient and every buffer after
// the train pass.
func requireParity(t *testing.T, dir, arch string) {
	s := torch.NewScope()
	defer s.Close()
	torch.ManualSeed(0)
	m := must[models.Network](t)(models.Build(arch, 1000))
	defer nn.Free(m)
	ref := must[[]nn.Named[*torch.Tensor]](t)(nn.ReadStateDict(filepath.Join(dir, arch+".pth")))
	own := nn.StateDict(m)
	require.Len(t, own, len(ref))
	for i, r := range ref {
		require.Equal(t, r.Name, own[i].Name, "state-dict key order")
		require.Equal(t, r.Value.DType(), own[i].Value.DType(), r.Name)
		require.Equal(t, must[[]byte](t)(r.Value.Bytes()), must[[]byte](t)(own[i].Value.Bytes()), "initial %s", r.Name)
	}
	report := must[nn.LoadReport](t)(models.LoadWeights(context.Background(), m, filepath.Join(dir, arch+".pth"), nil))
	require.True(t, report.Clean(), report.String())

	want := map[string]*torch.Tensor{}
	for _, e := range must[[]nn.Named[*torch.Tensor]](t)(nn.ReadStateDict(filepath.Join(dir, arch+"-ref.safetensors"))) {
		want[e.Name] = e.Value
	}
	x := want["input"]
	nn.Train(m, false)
	var evalLogits *torch.Tensor
	require.NoError(t, torch.NoGrad(func() error {
		var err error
		evalLogits, err = m.Forward(x)
		return err
	}))
	requireNear(t, want["eval_logits"], evalLogits, 1e-4, "eval logits")

	nn.Train(m, true)
	torch.ManualSeed(2)
	logits := must[*torch.Tensor](t)(m.Forward(x))
	requireNear(t, want["train_logits"], logits, 1e-4, "train logits")
	loss := must[*torch.Tensor](t)(must[*torch.Tensor](t)(logits.Mul(want["cot"])).Sum())
	require.NoError(t, loss.Backward())
	params := nn.NamedParameters(m)
	grads := 0
	for name := range want {
		if len(name) > 5 && name[:5] == "grad." {
			grads++
		}
	}
	require.Len(t, params, grads, "one gradient per torchvision parameter")
	for _, p := range params {
		g := must[*torch.Tensor](t)(p.Value.Grad())
		require.NotNil(t, g, p.Name)
		requireNear(t, want["grad."+p.Name], g, 1e-3, "gradient of "+p.Name)
	}
	for _, b := range nn.NamedBuffers(m) {
		requireNear(t, want["after."+b.Name], b.Value, 1e-4, "buffer "+b.Name)
	}
}

// TestParameterCounts checks every architecture against torchvision's
// published count.
func TestParameterCounts(t *testing.T) {
	var counts map[string]int64
	raw := must[[]byte](t)(os.ReadFile(filepath.Join(testref.Dir(t, "resnet.py"), "params.json")))
	require.NoError(t, json.Unmarshal(raw, &counts))
	require.ElementsMatch(t, models.Archs(), keys(counts))
	require.Equal(t, int64(25_557_032), counts["resnet50"])
	for _, arch := range models.Archs() {
		t.Run(arch, func(t *testing.T) {
			m := must[*models.ResNet](t)(models.New(arch, 1000))
			defer nn.Free(m)
			sum := must[nn.Summary](t)(nn.Summarize(m))
			require.Equal(t, counts[arch], sum.Total)
			require.Equal(t, counts[arch], sum.Trainable)
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
