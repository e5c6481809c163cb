package finetune

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// format1Metadata is the metadata of testdata/checkpoint-1-metadata.json.
func format1Metadata(t testing.TB) map[string]string {
	b, err := os.ReadFile("testdata/checkpoint-1-metadata.json")
	require.NoError(t, err)
	var md map[string]string
	require.NoError(t, json.Unmarshal(b, &md))
	return md
}

// writeFullCheckpoint writes a full checkpoint of a fresh model for the
// metadata of testdata/checkpoint-1-metadata.json, its state dict edited
// by edit, and returns its path.
func writeFullCheckpoint(t *testing.T, edit func([]nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor]) string {
	md := format1Metadata(t)
	meta, err := decodeMeta("seed", md)
	require.NoError(t, err)
	m, err := NewModel(meta.Config.Model.Arch, meta.Config.Model.Head, int64(len(meta.Classes)), meta.Config.Data.ImageSize)
	require.NoError(t, err)
	defer nn.Free(m)
	md, err = meta.encode()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "best.safetensors")
	require.NoError(t, nn.WriteSafetensors(path, edit(nn.StateDict(m)), md))
	return path
}

// TestCheckpointBadWeights: a checkpoint with a NaN is refused at load,
// naming the file and the tensor, so predict never prints probabilities
// of NaN; one saved with DataParallel's "module." prefix loads.
func TestCheckpointBadWeights(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	nan := writeFullCheckpoint(t, func(es []nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor] {
		for i, e := range es {
			if strings.HasPrefix(e.Name, "head.") && e.Value.DType().IsFloating() {
				es[i].Value, _ = torch.Full(e.Value.Shape(), math.NaN())
				break
			}
		}
		return es
	})
	_, _, err := LoadCheckpoint(context.Background(), nan, LoadOptions{})
	require.ErrorContains(t, err, nan)
	require.ErrorContains(t, err, "holds NaN or infinite values")
	require.Regexp(t, `head\.\S+: holds NaN`, err.Error())

	wrapped := writeFullCheckpoint(t, func(es []nn.Named[*torch.Tensor]) []nn.Named[*torch.Tensor] {
		for i := range es {
			es[i].Name = "module." + es[i].Name
		}
		return es
	})
	m, _, err := LoadCheckpoint(context.Background(), wrapped, LoadOptions{})
	require.NoError(t, err)
	nn.Free(m)
}

// TestCheckpointDamaged: a checkpoint a real run wrote, cut in half or
// with its training state edited, is reported as damaged by
// VerifyCheckpoint (what inspect --checkpoint runs), naming the file and
// what is wrong, and a tampered state is refused at load and at resume.
func TestCheckpointDamaged(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 6))
	cfg.Stages = []Stage{{Name: "head", Epochs: 2, Freeze: "all"}}
	opts, _ := recorded(cfg)
	res, err := Train(context.Background(), cfg, opts)
	require.NoError(t, err)
	nn.Free(res.Model)
	best := filepath.Join(cfg.Output.Dir, CheckpointBest+".safetensors")
	last := filepath.Join(cfg.Output.Dir, lastCheckpoint)
	for _, path := range []string{best, last} {
		_, err := VerifyCheckpoint(path)
		require.NoError(t, err, path)
	}

	b, err := os.ReadFile(best)
	require.NoError(t, err)
	half := filepath.Join(t.TempDir(), "half.safetensors")
	require.NoError(t, os.WriteFile(half, b[:len(b)/2], 0o644))
	// The header alone still reads: only reading the tensors finds it.
	_, err = ReadMeta(half)
	require.NoError(t, err)
	_, err = VerifyCheckpoint(half)
	require.ErrorContains(t, err, half)
	require.ErrorContains(t, err, "truncated")

	entries, md, err := nn.ReadSafetensors(last)
	require.NoError(t, err)
	for _, c := range []struct {
		field string
		value any
	}{{"stage", 99}, {"stage", -1}, {"epoch", -5}, {"epoch", 3}, {"step", -1}, {"step", 1 << 20}, {"step_in_epoch", 1000}, {"since_best", -2}} {
		var state map[string]any
		require.NoError(t, json.Unmarshal([]byte(md["trainer"]), &state))
		state[c.field] = c.value
		edited := maps.Clone(md)
		edited["trainer"] = string(must[[]byte](t)(json.Marshal(state)))
		path := filepath.Join(t.TempDir(), lastCheckpoint)
		require.NoError(t, nn.WriteSafetensors(path, entries, edited))
		want := fmt.Sprintf("%s: metadata \"trainer\": %s %d is not ", path, c.field, c.value)
		_, err := VerifyCheckpoint(path)
		require.ErrorContains(t, err, want)
		_, _, err = LoadCheckpoint(context.Background(), path, LoadOptions{})
		require.ErrorContains(t, err, want)
		_, err = Train(context.Background(), cfg, Options{Resume: path})
		require.ErrorContains(t, err, want)
	}
}

// TestErrorsEscapeNamesFromFiles: errors of the public API that quote a
// name from a file (a class folder, an image) carry its control
// characters escaped, so a library user printing them shows the name
// without letting it rewrite the terminal; errors.Is still sees through.
func TestErrorsEscapeNamesFromFiles(t *testing.T) {
	root := t.TempDir()
	writeShapes(t, root, 4, 40, 3)
	require.NoError(t, os.Mkdir(filepath.Join(root, "empty\x07class"), 0o755))
	cfg := tinyConfig(t, root)
	for _, fn := range []func() error{
		func() error { _, err := OpenData(cfg); return err },
		func() error { _, err := Train(context.Background(), cfg, Options{}); return err },
	} {
		err := fn()
		require.ErrorContains(t, err, `empty\aclass`)
		require.NotContains(t, err.Error(), "\x07")
	}
	require.NoError(t, os.Remove(filepath.Join(root, "empty\x07class")))

	bad := filepath.Join(root, "dark", "evil\x1b[2J.png")
	require.NoError(t, os.WriteFile(bad, []byte("not a png"), 0o644))
	m, err := NewModel("resnet18", cfg.Model.Head, 2, cfg.Data.ImageSize)
	require.NoError(t, err)
	defer nn.Free(m)
	_, err = Predict(context.Background(), m, Meta{Config: cfg, Classes: []string{"bright", "dark"}}, []string{bad}, PredictOptions{})
	require.ErrorContains(t, err, `evil\x1b[2J.png`)
	require.NotContains(t, err.Error(), "\x1b")
	_, err = Evaluate(context.Background(), m, Meta{Config: cfg, Classes: []string{"bright", "dark"}}, root, "error")
	require.ErrorContains(t, err, `evil\x1b[2J.png`)
	require.NotContains(t, err.Error(), "\x1b")
}
