package tensorfile_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/torch/tensorfile"
)

// handWrittenSafetensors is a safetensors file written by hand from the
// specification. Its header lists the tensors in another order than their
// data: a (F32 [1, -2]), b (I16 [258, -1]), then the scalar s (BOOL true).
var handWrittenSafetensors = []byte("\xc8\x00\x00\x00\x00\x00\x00\x00" +
	`{"b":{"dtype":"I16","shape":[2],"data_offsets":[8,12]},` +
	`"__metadata__":{"format":"pt"},` +
	`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
	`"s":{"dtype":"BOOL","shape":[],"data_offsets":[12,13]}}` +
	"      " +
	"\x00\x00\x80\x3f\x00\x00\x00\xc0" +
	"\x02\x01\xff\xff" +
	"\x01")

func TestReadSafetensorsHandWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hand.safetensors")
	require.NoError(t, os.WriteFile(path, handWrittenSafetensors, 0o644))
	want := []tensorfile.Tensor{
		{Name: "a", DType: tensorfile.F32, Shape: []int64{2}, Data: []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}},
		{Name: "b", DType: tensorfile.I16, Shape: []int64{2}, Data: []byte{2, 1, 0xff, 0xff}},
		{Name: "s", DType: tensorfile.Bool, Shape: []int64{}, Data: []byte{1}},
	}

	tensors, metadata, err := tensorfile.ReadSafetensors(path)
	require.NoError(t, err)
	require.Equal(t, want, tensors)
	require.Equal(t, map[string]string{"format": "pt"}, metadata)

	tensors, err = tensorfile.Read(path)
	require.NoError(t, err)
	require.Equal(t, want, tensors)
}

func TestWriteSafetensorsExactBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.safetensors")
	tensors := []tensorfile.Tensor{
		{Name: "z", DType: tensorfile.F32, Shape: []int64{2}, Data: []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}},
		{Name: "a", DType: tensorfile.I64, Shape: nil, Data: []byte{7, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "e", DType: tensorfile.U8, Shape: []int64{0, 3}, Data: nil},
	}
	require.NoError(t, tensorfile.WriteSafetensors(path, tensors, map[string]string{"format": "pt"}))

	got, err := os.ReadFile(path)
	require.NoError(t, err)
	header := `{"__metadata__":{"format":"pt"},` +
		`"a":{"dtype":"I64","shape":[],"data_offsets":[8,16]},` +
		`"e":{"dtype":"U8","shape":[0,3],"data_offsets":[16,16]},` +
		`"z":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}` +
		"      " // 194 bytes of JSON, padded to 200
	want := "\xc8\x00\x00\x00\x00\x00\x00\x00" + header +
		"\x00\x00\x80\x3f\x00\x00\x00\xc0" + // z, first as given
		"\x07\x00\x00\x00\x00\x00\x00\x00" // a
	require.Equal(t, want, string(got))
	require.Len(t, header, 200)
	require.Equal(t, uint64(len(header)), binary.LittleEndian.Uint64(got[:8]))

	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), info.Mode().Perm())
}

func TestSafetensorsRoundTrip(t *testing.T) {
	dir, expected := fixtureDir(t)
	tests := []struct {
		file, want string
		metadata   map[string]string
	}{
		{"resnet18_zip.pth", "resnet18", map[string]string{"format": "pt", "model": "resnet18"}},
		{"views_legacy.pth", "views", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			tensors, err := tensorfile.ReadPTH(filepath.Join(dir, tt.file))
			require.NoError(t, err)
			path := filepath.Join(t.TempDir(), "model.safetensors")
			require.NoError(t, tensorfile.WriteSafetensors(path, tensors, tt.metadata))

			got, metadata, err := tensorfile.ReadSafetensors(path)
			require.NoError(t, err)
			requireTensors(t, expected[tt.want], got)
			require.Equal(t, tt.metadata, metadata)

			got, err = tensorfile.Read(path)
			require.NoError(t, err)
			requireTensors(t, expected[tt.want], got)
		})
	}
}

func TestWriteSafetensorsReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
	tensors := []tensorfile.Tensor{{Name: "x", DType: tensorfile.U8, Shape: []int64{1}, Data: []byte{42}}}
	require.NoError(t, tensorfile.WriteSafetensors(path, tensors, nil))

	got, metadata, err := tensorfile.ReadSafetensors(path)
	require.NoError(t, err)
	require.Equal(t, tensors, got)
	require.Nil(t, metadata)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")
}

func TestWriteSafetensorsInvalid(t *testing.T) {
	f32 := func(name string, shape ...int64) tensorfile.Tensor {
		n := int64(4)
		for _, d := range shape {
			n *= d
		}
		return tensorfile.Tensor{Name: name, DType: tensorfile.F32, Shape: shape, Data: make([]byte, n)}
	}
	tests := []struct {
		name     string
		tensors  []tensorfile.Tensor
		metadata map[string]string
		want     string
	}{
		{"no name", []tensorfile.Tensor{f32("")}, nil, "tensor 0 has no name"},
		{"metadata name", []tensorfile.Tensor{f32("__metadata__")}, nil, `tensor name "__metadata__" is reserved for metadata`},
		{"twice", []tensorfile.Tensor{f32("x", 1), f32("x", 2)}, nil, `tensor name "x" is used twice`},
		{"unknown dtype", []tensorfile.Tensor{{Name: "x", DType: "F8_E4M3", Data: []byte{0}}}, nil, `tensor "x": unsupported dtype "F8_E4M3"`},
		{"negative dimension", []tensorfile.Tensor{{Name: "x", DType: tensorfile.F32, Shape: []int64{-1}}}, nil, `tensor "x": shape [-1] has a negative dimension`},
		{"short data", []tensorfile.Tensor{{Name: "x", DType: tensorfile.I32, Shape: []int64{2}, Data: []byte{1, 2, 3, 4}}}, nil,
			`tensor "x": has 4 bytes of data, but shape [2] of I32 needs 8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "model.safetensors")
			err := tensorfile.WriteSafetensors(path, tt.tensors, tt.metadata)
			require.EqualError(t, err, "tensorfile: "+path+": "+tt.want)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries)
		})
	}

	path := filepath.Join(t.TempDir(), "missing", "model.safetensors")
	err := tensorfile.WriteSafetensors(path, nil, nil)
	require.ErrorContains(t, err, "tensorfile: "+path+": cannot create a temporary file: ")
}

// safetensorsFile returns a safetensors file with the given header, padded
// with spaces, and data.
func safetensorsFile(header, data string) []byte {
	for len(header)%8 != 0 {
		header += " "
	}
	buf := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(buf, header...), data...)
}

func TestReadSafetensorsInvalid(t *testing.T) {
	entry := func(name, dtype, shape string, begin, end int) string {
		return fmt.Sprintf(`"%s":{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}`, name, dtype, shape, begin, end)
	}
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"header length past the end", []byte("\xff\x00\x00\x00\x00\x00\x00\x00{}"),
			"the header length 255 is more than the rest of the file; the file may be truncated"},
		{"header length too large", []byte("\x00\x00\x00\x00\x01\x00\x00\x00{}"),
			"the header length 4294967296 is over the limit of 100000000 bytes; this is not a safetensors file"},
		{"not an object", safetensorsFile(`[]`, ""), "the header does not begin with '{'; this is not a safetensors file"},
		{"not JSON", safetensorsFile(`{"a":`, ""), "the header is not a valid JSON object: "},
		{"not UTF-8", safetensorsFile("{\"\xff\":1}", ""), "the header is not valid UTF-8"},
		{"padding not spaces", safetensorsFile("{}\n\n\n\n\n\n", ""), "the header has trailing bytes other than space padding"},
		{"entry not an object", safetensorsFile(`{"a":1}`, ""), `tensor "a": invalid header entry: `},
		{"missing offsets", safetensorsFile(`{"a":{"dtype":"F32","shape":[]}}`, "1234"), `tensor "a": the header entry needs a shape and two data offsets`},
		{"missing shape", safetensorsFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, "1234"), `tensor "a": the header entry needs a shape and two data offsets`},
		{"unknown dtype", safetensorsFile(`{`+entry("a", "C64", "[1]", 0, 8)+`}`, "12345678"), `tensor "a": unsupported dtype "C64"`},
		{"negative dimension", safetensorsFile(`{`+entry("a", "U8", "[-1]", 0, 0)+`}`, ""), `tensor "a": shape [-1] has a negative dimension`},
		{"huge shape", safetensorsFile(`{`+entry("a", "U8", "[4294967296,4294967296]", 0, 0)+`}`, ""), `tensor "a": shape [4294967296 4294967296] is too large`},
		{"offsets out of bounds", safetensorsFile(`{`+entry("a", "U8", "[4]", 0, 4)+`}`, "12"),
			`tensor "a": data offsets [0, 4] are outside the 2 bytes of data; the file is truncated`},
		{"offsets reversed", safetensorsFile(`{`+entry("a", "U8", "[0]", 2, 1)+`}`, "12"),
			`tensor "a": data offsets [2, 1] are outside the 2 bytes of data`},
		{"size mismatch", safetensorsFile(`{`+entry("a", "F32", "[2]", 0, 4)+`}`, "1234"),
			`tensor "a": data offsets [0, 4] span 4 bytes, but shape [2] of F32 needs 8`},
		{"gap", safetensorsFile(`{`+entry("a", "U8", "[2]", 0, 2)+`,`+entry("b", "U8", "[2]", 3, 5)+`}`, "12345"),
			`tensor "b": 1 bytes before its data belong to no tensor`},
		{"gap at start", safetensorsFile(`{`+entry("a", "U8", "[2]", 1, 3)+`}`, "123"),
			`tensor "a": 1 bytes before its data belong to no tensor`},
		{"overlap", safetensorsFile(`{`+entry("a", "U8", "[2]", 0, 2)+`,`+entry("b", "U8", "[2]", 1, 3)+`}`, "123"),
			`tensor "b": its data overlaps the previous tensor's`},
		{"trailing data", safetensorsFile(`{`+entry("a", "U8", "[2]", 0, 2)+`}`, "123"),
			"the last 1 bytes of data belong to no tensor"},
		{"metadata not strings", safetensorsFile(`{"__metadata__":{"epoch":3}}`, ""),
			"the header's __metadata__ is not an object of strings: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.safetensors")
			require.NoError(t, os.WriteFile(path, tt.file, 0o644))
			tensors, metadata, err := tensorfile.ReadSafetensors(path)
			require.Nil(t, tensors)
			require.Nil(t, metadata)
			require.ErrorContains(t, err, "tensorfile: "+path+": "+tt.want)
		})
	}
}
