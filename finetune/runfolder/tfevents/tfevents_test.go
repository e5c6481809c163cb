package tfevents

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finetune-go/finetune/finetune"
	"github.com/stretchr/testify/require"
)

// pbField is one decoded protocol buffer field: a varint or fixed value
// in v, length-delimited bytes in b.
type pbField struct {
	num, wire int
	v         uint64
	b         []byte
}

// decodePB decodes one message's fields, failing on anything malformed.
func decodePB(t *testing.T, b []byte) []pbField {
	t.Helper()
	var out []pbField
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		require.Positive(t, n, "bad field key")
		b = b[n:]
		f := pbField{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case 0:
			f.v, n = binary.Uvarint(b)
			require.Positive(t, n)
			b = b[n:]
		case 1:
			require.GreaterOrEqual(t, len(b), 8)
			f.v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 5:
			require.GreaterOrEqual(t, len(b), 4)
			f.v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case 2:
			l, n := binary.Uvarint(b)
			require.Positive(t, n)
			require.GreaterOrEqual(t, uint64(len(b)-n), l)
			f.b, b = b[n:n+int(l)], b[n+int(l):]
		default:
			t.Fatalf("wire type %d", f.wire)
		}
		out = append(out, f)
	}
	return out
}

// readRecords splits a TFRecord file, checking both checksums of each
// record.
func readRecords(t *testing.T, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var out [][]byte
	for len(raw) > 0 {
		require.GreaterOrEqual(t, len(raw), 12)
		n := binary.LittleEndian.Uint64(raw)
		require.Equal(t, maskedCRC(raw[:8]), binary.LittleEndian.Uint32(raw[8:12]), "length checksum")
		raw = raw[12:]
		require.GreaterOrEqual(t, uint64(len(raw)), n+4)
		data := raw[:n]
		require.Equal(t, maskedCRC(data), binary.LittleEndian.Uint32(raw[n:n+4]), "data checksum")
		out = append(out, data)
		raw = raw[n+4:]
	}
	return out
}

func TestEventFile(t *testing.T) {
	// CRC-32C's check value, masked: rotate right by 15, add 0xa282ead8.
	c := uint32(0xe3069283)
	require.Equal(t, (c>>15|c<<17)+0xa282ead8, maskedCRC([]byte("123456789")))
	dir := t.TempDir()
	tb, err := Create(dir)
	require.NoError(t, err)
	epochs := []finetune.EpochMetrics{
		{GlobalEpoch: 1, TrainLoss: 0.7, TrainStepAccuracy: 0.45, TrainAccuracy: 0.5, TrainEvalLoss: 0.68, ValLoss: 0.69,
			ValAccuracy: 0.55, Gap: -0.05, LR: 1e-3},
		{GlobalEpoch: 2, TrainLoss: 0.4, TrainStepAccuracy: 0.8, TrainAccuracy: 0.875, TrainEvalLoss: 0.35, ValLoss: 0.5,
			ValAccuracy: 0.75, Gap: 0.125, LR: 5e-4},
	}
	for _, em := range epochs {
		require.NoError(t, tb.Epoch(em))
	}
	require.NoError(t, tb.Close())
	require.True(t, strings.HasPrefix(filepath.Base(tb.Path()), "events.out.tfevents."))

	info, err := os.Stat(tb.Path())
	require.NoError(t, err)
	require.Equal(t, info.Size(), tb.Size())
	recs := readRecords(t, tb.Path())
	require.Len(t, recs, 3)
	first := decodePB(t, recs[0])
	require.Len(t, first, 2)
	require.Equal(t, 1, first[0].num)
	require.Equal(t, 1, first[0].wire)
	require.InDelta(t, float64(time.Now().Unix()), math.Float64frombits(first[0].v), 60, "wall_time in seconds")
	require.Equal(t, 3, first[1].num)
	require.Equal(t, "brain.Event:2", string(first[1].b))

	for i, rec := range recs[1:] {
		fields := decodePB(t, rec)
		require.Len(t, fields, 3)
		require.Equal(t, []int{1, 2, 5}, []int{fields[0].num, fields[1].num, fields[2].num})
		require.Equal(t, uint64(epochs[i].GlobalEpoch), fields[1].v, "step")
		got := map[string]float32{}
		for _, v := range decodePB(t, fields[2].b) {
			require.Equal(t, 1, v.num, "Summary.value")
			value := decodePB(t, v.b)
			require.Len(t, value, 2)
			require.Equal(t, 1, value[0].num, "Value.tag")
			require.Equal(t, 2, value[1].num, "Value.simple_value")
			require.Equal(t, 5, value[1].wire, "float")
			got[string(value[0].b)] = math.Float32frombits(uint32(value[1].v))
		}
		em := epochs[i]
		require.Equal(t, map[string]float32{
			"train/loss": float32(em.TrainLoss), "train/step_accuracy": float32(em.TrainStepAccuracy),
			"train/accuracy": float32(em.TrainAccuracy), "train/eval_loss": float32(em.TrainEvalLoss),
			"val/loss": float32(em.ValLoss), "val/accuracy": float32(em.ValAccuracy), "gap": float32(em.Gap), "lr": float32(em.LR),
		}, got)
	}
}

// fieldMap indexes a message's fields by number (the last of a repeated
// one).
func fieldMap(t *testing.T, b []byte) map[int]pbField {
	out := map[int]pbField{}
	for _, f := range decodePB(t, b) {
		out[f.num] = f
	}
	return out
}

// TestImageAndText checks the Summary.Value of an image (Image: height,
// width, colorspace, the PNG) and of a text (a DT_STRING tensor with the
// text plugin's metadata), as TensorBoard's event reader decodes them.
func TestImageAndText(t *testing.T) {
	tb, err := Create(t.TempDir())
	require.NoError(t, err)
	png := []byte("\x89PNG fake")
	require.NoError(t, tb.Image(3, "confusion/test", png, 640, 480))
	require.NoError(t, tb.Text(3, "plan", "| key | value |\n|---|---|\n| lr | 0.001 |"))
	require.NoError(t, tb.Close())
	recs := readRecords(t, tb.Path())
	require.Len(t, recs, 3)
	value := func(rec []byte) map[int]pbField {
		ev := fieldMap(t, rec)
		require.Equal(t, uint64(3), ev[2].v, "step")
		summary := decodePB(t, ev[5].b)
		require.Len(t, summary, 1)
		return fieldMap(t, summary[0].b)
	}

	v := value(recs[1])
	require.Equal(t, "confusion/test", string(v[1].b))
	img := fieldMap(t, v[4].b)
	require.Equal(t, []uint64{480, 640, 4}, []uint64{img[1].v, img[2].v, img[3].v}, "height, width, colorspace")
	require.Equal(t, png, img[4].b)

	v = value(recs[2])
	require.Equal(t, "plan", string(v[1].b))
	tensor := fieldMap(t, v[8].b)
	require.Equal(t, uint64(7), tensor[1].v, "DT_STRING")
	require.Empty(t, tensor[2].b, "a scalar")
	require.Equal(t, "| key | value |\n|---|---|\n| lr | 0.001 |", string(tensor[8].b))
	plugin := fieldMap(t, fieldMap(t, v[9].b)[1].b)
	require.Equal(t, "text", string(plugin[1].b))
}
