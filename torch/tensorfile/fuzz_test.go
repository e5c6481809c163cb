package tensorfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/torch/tensorfile"
)

// FuzzReadSafetensors checks that no header or data offsets make
// ReadSafetensors panic, and that what it accepts is consistent. The
// seeds are a hand-written file and files whose offsets overlap, leave a
// gap, or run past the data.
func FuzzReadSafetensors(f *testing.F) {
	f.Add(handWrittenSafetensors)
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, "01234567"))
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, "01234567"))
	f.Add(safetensorsFile(`{"__metadata__":{"k":"v"},"a":{"dtype":"U8","shape":[3,1],"data_offsets":[0,16]}}`, "012"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "in.safetensors")
		require.NoError(t, os.WriteFile(path, data, 0o644))
		tensors, _, err := tensorfile.ReadSafetensors(path)
		if err != nil {
			require.Contains(t, err.Error(), path)
			return
		}
		requireConsistent(t, tensors)
	})
}

// FuzzReadPTH checks that no input makes ReadPTH panic, from a zip
// checkpoint written by torch.save (testdata/tiny_zip.pth: a tensor and a
// view at an offset) and a hand-made legacy one.
func FuzzReadPTH(f *testing.F) {
	zipped, err := os.ReadFile("testdata/tiny_zip.pth")
	require.NoError(f, err)
	f.Add(zipped)
	f.Add([]byte(legacyPrefix + handMadeTensor("K\x00", "K\x02\x85", "K\x01\x85") + handMadeStorage))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "in.pth")
		require.NoError(t, os.WriteFile(path, data, 0o644))
		tensors, err := tensorfile.ReadPTH(path)
		if err != nil {
			require.True(t, strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "in.pth"), err.Error())
			return
		}
		requireConsistent(t, tensors)
	})
}

// TestTinyZipSeed: the zip seed of FuzzReadPTH reads, so the fuzzer
// starts from a valid file.
func TestTinyZipSeed(t *testing.T) {
	tensors, err := tensorfile.ReadPTH("testdata/tiny_zip.pth")
	require.NoError(t, err)
	require.Len(t, tensors, 2)
	requireConsistent(t, tensors)
}
