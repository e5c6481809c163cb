package finetune

import (
	"context"
	"encoding/json"
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
