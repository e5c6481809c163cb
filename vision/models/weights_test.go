package models_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
	"github.com/stretchr/testify/require"
)

// resnet18File writes a resnet18 state dict with the given edits and
// returns its path.
func resnet18File(t *testing.T, edit func([]nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor]) string {
	t.Helper()
	m := must[*models.ResNet](t)(models.New("resnet18", 1000))
	defer nn.Free(m)
	entries := nn.StateDict(m)
	if edit != nil {
		entries = edit(entries)
	}
	path := filepath.Join(t.TempDir(), "resnet18.safetensors")
	require.NoError(t, nn.WriteSafetensors(path, entries, nil))
	return path
}

func TestLoadWeightsProblemsAreNamed(t *testing.T) {
	drop := func(key string) func([]nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor] {
		return func(es []nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor] {
			var out []nn.Named[*torch.Tensor]
			for _, e := range es {
				if e.Name != key {
					out = append(out, e)
				}
			}
			return out
		}
	}
	extra := func(es []nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor] {
		return append(es, nn.Named[*torch.Tensor]{Name: "layer5.weight", Value: must[*torch.Tensor](t)(torch.Zeros([]int64{3}))})
	}
	reshape := func(es []nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor] {
		for i := range es {
			if es[i].Name == "layer2.0.conv1.weight" {
				es[i].Value = must[*torch.Tensor](t)(torch.Zeros([]int64{128, 64, 1, 1}))
			}
		}
		return es
	}
	nan := func(es []nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor] {
		for i := range es {
			if es[i].Name == "layer3.1.bn2.running_var" {
				es[i].Value = must[*torch.Tensor](t)(torch.Full(es[i].Value.Shape(), math.Inf(1)))
			}
		}
		return es
	}
	renamed := func(es []nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor] {
		for i := range es {
			es[i].Name = "encoder." + es[i].Name
		}
		return es
	}
	truncated := func(t *testing.T) string {
		path := resnet18File(t, nil)
		raw := must[[]byte](t)(os.ReadFile(path))
		require.NoError(t, os.WriteFile(path, raw[:len(raw)/2], 0o644))
		return path
	}
	cases := []struct {
		name string
		file func(t *testing.T) string
		msg  string
	}{
		{"missing key", func(t *testing.T) string { return resnet18File(t, drop("layer1.0.bn1.running_var")) }, "missing keys layer1.0.bn1.running_var"},
		{"extra key", func(t *testing.T) string { return resnet18File(t, extra) }, "unexpected keys layer5.weight"},
		{"wrong shape", func(t *testing.T) string { return resnet18File(t, reshape) }, "layer2.0.conv1.weight has shape [128 64 1 1] in the file but [128 64 3 3]"},
		{"non-finite", func(t *testing.T) string { return resnet18File(t, nan) }, "layer3.1.bn2.running_var: holds NaN or infinite values"},
		{"other keys", func(t *testing.T) string { return resnet18File(t, renamed) }, "unexpected keys encoder.conv1.weight, encoder.bn1.weight, encoder.bn1.bias, encoder.bn1.running_mean, encoder.bn1.running_var and 117 more (122 in all)"},
		{"truncated", truncated, "resnet18.safetensors"},
		{"not there", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.pth") }, "nope.pth"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := must[*models.ResNet](t)(models.New("resnet18", 1000))
			defer nn.Free(m)
			_, err := models.LoadWeights(context.Background(), m, c.file(t), nil)
			require.ErrorContains(t, err, c.msg)
		})
	}
}

// TestNewHeadIsReportedNotAnError: a two-class model takes the backbone
// of ImageNet weights and keeps its own fresh classifier.
func TestNewHeadIsReportedNotAnError(t *testing.T) {
	path := resnet18File(t, nil)
	src := must[[]nn.Named[*torch.Tensor]](t)(nn.ReadStateDict(path))
	m := must[*models.ResNet](t)(models.New("resnet18", 2))
	defer nn.Free(m)
	fc := must[[]float32](t)(m.FC.Parameter("weight").Float32s())
	r := must[nn.LoadReport](t)(models.LoadWeights(context.Background(), m, path, nil))
	require.Len(t, r.Mismatched, 2)
	require.Equal(t, "fc.weight", r.Mismatched[0].Key)
	require.Equal(t, []int64{1000, 512}, r.Mismatched[0].Have)
	require.Equal(t, fc, must[[]float32](t)(m.FC.Parameter("weight").Float32s()), "the new head was overwritten")
	require.Equal(t, must[[]byte](t)(src[0].Value.Bytes()), must[[]byte](t)(m.Conv1.Parameter("weight").Bytes()))
}

func TestFeatures(t *testing.T) {
	m := must[*models.ResNet](t)(models.New("resnet18", 10))
	defer nn.Free(m)
	nn.Train(m, false)
	x := must[*torch.Tensor](t)(torch.Randn([]int64{2, 3, 64, 64}))
	f := must[map[string]*torch.Tensor](t)(m.Features(x, "layer3", "layer4", "pool"))
	require.Equal(t, []int64{2, 256, 4, 4}, f["layer3"].Shape())
	require.Equal(t, []int64{2, 512, 2, 2}, f["layer4"].Shape())
	require.Equal(t, []int64{2, 512}, f["pool"].Shape())
	logits := must[*torch.Tensor](t)(m.Forward(x))
	viaPool := must[*torch.Tensor](t)(m.FC.Forward(f["pool"]))
	require.Equal(t, must[[]float32](t)(logits.Float32s()), must[[]float32](t)(viaPool.Float32s()))
	_, err := m.Features(x, "layer9")
	require.ErrorContains(t, err, `unknown stage "layer9"`)
	require.Equal(t, int64(512), m.FeatureDim())
}

func TestSummary(t *testing.T) {
	m := must[*models.ResNet](t)(models.New("resnet18", 2))
	defer nn.Free(m)
	require.NoError(t, nn.Freeze(m))
	require.NoError(t, nn.Unfreeze(m.FC))
	s := must[nn.Summary](t)(nn.Summarize(m))
	require.Equal(t, int64(512*2+2), s.Trainable)
	path := filepath.Join(t.TempDir(), "m.safetensors")
	require.NoError(t, nn.WriteSafetensors(path, nn.StateDict(m), nil))
	info := must[os.FileInfo](t)(os.Stat(path))
	require.Equal(t, info.Size(), s.FileBytes, "the summary's file size is the real one")
	table := s.Table(1)
	require.Contains(t, table, "layer4")
	require.Contains(t, table, "1,026 trainable")
}

func TestLookupWeights(t *testing.T) {
	w := must[models.Weights](t)(models.LookupWeights("resnet50", models.BestAlias))
	require.Equal(t, "IMAGENET1K_V2", w.Name)
	require.Equal(t, "resnet50-11ad3fa6.pth", w.FileName())
	require.Equal(t, "11ad3fa6", w.HashPrefix())
	w = must[models.Weights](t)(models.LookupWeights("resnet18", "DEFAULT"))
	require.Equal(t, "https://download.pytorch.org/models/resnet18-f37072fd.pth", w.URL)
	_, err := models.LookupWeights("resnet18", "IMAGENET1K_V2")
	require.ErrorContains(t, err, "no weights")
	_, err = models.LookupWeights("vgg16", "IMAGENET1K_V1")
	require.Error(t, err)
}

// TestHubDownload serves a weights file from a local server: a good body
// lands in the cache, a corrupt one is refused and leaves nothing, and an
// unreachable server says where to put the file.
func TestHubDownload(t *testing.T) {
	body := must[[]byte](t)(os.ReadFile(resnet18File(t, nil)))
	sum := sha256.Sum256(body)
	name := "resnet18-" + hex.EncodeToString(sum[:])[:8] + ".pth"
	serve := map[string][]byte{
		"/good/" + name: body,
		"/bad/" + name:  append(bytes.Clone(body[:len(body)-1]), body[len(body)-1]^1),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := serve[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	defer srv.Close()
	ctx := context.Background()

	t.Run("good", func(t *testing.T) {
		var progress bytes.Buffer
		hub := &models.Hub{Dir: t.TempDir(), Progress: &progress}
		w := models.Weights{Arch: "resnet18", Name: "TEST", URL: srv.URL + "/good/" + name}
		path := must[string](t)(hub.Fetch(ctx, w))
		require.Equal(t, filepath.Join(hub.Dir, name), path)
		require.Equal(t, body, must[[]byte](t)(os.ReadFile(path)))
		require.Contains(t, progress.String(), "downloading "+name+": 100%")
		m := must[*models.ResNet](t)(models.New("resnet18", 2))
		defer nn.Free(m)
		r := must[nn.LoadReport](t)(models.LoadWeights(ctx, m, path, nil))
		require.Len(t, r.Loaded, len(nn.StateDict(m))-2)
	})
	t.Run("corrupt", func(t *testing.T) {
		hub := &models.Hub{Dir: t.TempDir()}
		w := models.Weights{Arch: "resnet18", Name: "TEST", URL: srv.URL + "/bad/" + name}
		_, err := hub.Fetch(ctx, w)
		require.ErrorContains(t, err, "the download is corrupt")
		left, _ := os.ReadDir(hub.Dir)
		require.Empty(t, left, "a corrupt download was left in the cache")
	})
	t.Run("mirror of the official name", func(t *testing.T) {
		hub := &models.Hub{Dir: t.TempDir(), BaseURL: srv.URL + "/good"}
		w := models.Weights{Arch: "resnet18", Name: "TEST", URL: models.OfficialURL + name}
		require.FileExists(t, must[string](t)(hub.Fetch(ctx, w)))
	})
	t.Run("offline", func(t *testing.T) {
		hub := &models.Hub{Dir: t.TempDir(), BaseURL: "http://127.0.0.1:1"}
		m := must[*models.ResNet](t)(models.New("resnet50", 2))
		defer nn.Free(m)
		_, err := models.LoadWeights(ctx, m, "IMAGENET1K_V2", hub)
		require.ErrorContains(t, err, "download http://127.0.0.1:1/resnet50-11ad3fa6.pth and put it at "+filepath.Join(hub.Dir, "resnet50-11ad3fa6.pth"))
	})
	t.Run("cached", func(t *testing.T) {
		hub := &models.Hub{Dir: t.TempDir(), BaseURL: "http://127.0.0.1:1"}
		require.NoError(t, os.WriteFile(filepath.Join(hub.Dir, name), body, 0o644))
		w := models.Weights{Arch: "resnet18", Name: "TEST", URL: models.OfficialURL + name}
		require.FileExists(t, must[string](t)(hub.Fetch(ctx, w)), "a cached file needs no network")
	})
}

// TestLoadWeightsSavedFromWrapper: weights saved from DataParallel
// (module.) load into the backbone, with the head left out as for a
// plain file, and the report says the prefix was removed.
func TestLoadWeightsSavedFromWrapper(t *testing.T) {
	path := resnet18File(t, func(es []nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor] {
		for i := range es {
			es[i].Name = "module." + es[i].Name
		}
		return es
	})
	for _, classes := range []int64{2, 0} {
		m := must[*models.ResNet](t)(models.New("resnet18", classes))
		r, err := models.LoadWeights(context.Background(), m, path, nil)
		nn.Free(m)
		require.NoError(t, err)
		require.Equal(t, "module.", r.Stripped)
		require.Empty(t, r.Missing)
		require.Empty(t, r.Unexpected)
	}
}
