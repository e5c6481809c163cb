package tensorfile_test

import (
	"archive/zip"
	"bytes"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/torch/tensorfile"
)

func TestReadPTH(t *testing.T) {
	dir, expected := fixtureDir(t)
	tests := []struct {
		file string
		want string // key of expected.json
	}{
		{"resnet18_zip.pth", "resnet18"},
		{"resnet18_legacy.pth", "resnet18"},
		{"views_zip.pth", "views"},
		{"views_legacy.pth", "views"},
		{"checkpoint_state_dict.pth", "small"},
		{"checkpoint_model.pth", "small"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			got, err := tensorfile.ReadPTH(path)
			require.NoError(t, err)
			requireTensors(t, expected[tt.want], got)

			got, err = tensorfile.Read(path)
			require.NoError(t, err)
			requireTensors(t, expected[tt.want], got)
		})
	}
}

func TestReadPTHRefuses(t *testing.T) {
	dir, _ := fixtureDir(t)
	tests := []struct {
		file string
		want string
	}{
		{"malicious_zip.pth", `data.pkl: refusing to load global "posix.system": only state-dict classes are allowed`},
		{"malicious_legacy.pth", `reading the state dict: refusing to load global "posix.system": only state-dict classes are allowed`},
		{"nontensor.pth", `state dict entry "epoch" holds a value of type int, not a tensor`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			tensors, err := tensorfile.ReadPTH(path)
			require.Nil(t, tensors)
			require.EqualError(t, err, "tensorfile: "+path+": "+tt.want)
			_, err = tensorfile.Read(path)
			require.EqualError(t, err, "tensorfile: "+path+": "+tt.want)
		})
	}
}

// legacyPrefix is the start of a legacy checkpoint: the magic number, the
// protocol version and the system information.
const legacyPrefix = "\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19." + "\x80\x02M\xe9\x03." +
	"\x80\x02}X\x0d\x00\x00\x00little_endian\x88s."

// TestReadPTHHandMade covers pickles that torch.save does not write.
func TestReadPTHHandMade(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"builtins eval", legacyPrefix + "\x80\x02cbuiltins\neval\n.", `refusing to load global "builtins.eval"`},
		{"__builtin__ set", legacyPrefix + "\x80\x02c__builtin__\nset\n.", `refusing to load global "__builtin__.set"`},
		{"__builtin__ object", legacyPrefix + "\x80\x02c__builtin__\nobject\n.", `refusing to load global "__builtin__.object"`},
		{"protocol 4", legacyPrefix + "\x80\x04\x95\x01\x00\x00\x00\x00\x00\x00\x00}.", "pickle opcode 0x95 at byte 2 is not allowed"},
		{"persistent id of another kind", legacyPrefix + "\x80\x02X\x04\x00\x00\x00evilQ.", "unsupported persistent id"},
		{"empty LONG1", "\x80\x02\x8a\x00.", "the pickle data is malformed"},
		{"opcode 0xff", "\x80\x02\xff.", "pickle opcode 0xff at byte 2 is not allowed"},
		{"big endian", "\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19." + "\x80\x02M\xe9\x03." +
			"\x80\x02}X\x0d\x00\x00\x00little_endian\x89s.", "only little-endian checkpoints are supported"},
		{"list", legacyPrefix + "\x80\x02]." + "\x80\x02].", "the checkpoint holds a value of type list, not a state dict"},
		{"not a checkpoint", "\x80\x02K\x01.", "the legacy format's magic number is missing"},
		{"stack underflow", legacyPrefix + "\x80\x02R.", "the pickle data is malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.pth")
			require.NoError(t, os.WriteFile(path, []byte(tt.data), 0o644))
			_, err := tensorfile.ReadPTH(path)
			require.ErrorContains(t, err, "tensorfile: "+path+": ")
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// handMadeTensor is the main pickle of a legacy checkpoint holding tensor w,
// a view of storage "0" of two float32 elements with the given storage
// offset, size and stride (pickle fragments), rebuilt with _rebuild_tensor
// and wrapped in _rebuild_parameter_with_state.
func handMadeTensor(offset, size, stride string) string {
	return "\x80\x02}(U\x01w" +
		"ctorch._utils\n_rebuild_parameter_with_state\n(" +
		"ctorch._utils\n_rebuild_tensor\n(" +
		"(U\x07storagectorch\nFloatStorage\nU\x010U\x03cpuK\x02NtQ" +
		offset + size + stride + "tR" +
		"\x88}}tRu."
}

// handMadeStorage is the end of a legacy checkpoint: the storage keys and the
// data of storage "0", the float32 values 1 and 2.
const handMadeStorage = "\x80\x02](U\x010e." +
	"\x02\x00\x00\x00\x00\x00\x00\x00" + "\x00\x00\x80\x3f\x00\x00\x00\x40"

func TestReadPTHHandMadeTensors(t *testing.T) {
	tests := []struct {
		name, offset, size, stride string
		want                       []tensorfile.Tensor
		wantErr                    string
	}{
		{name: "vector", offset: "K\x00", size: "K\x02\x85", stride: "K\x01\x85",
			want: []tensorfile.Tensor{{Name: "w", DType: tensorfile.F32, Shape: []int64{2}, Data: []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}}}},
		{name: "scalar at offset", offset: "K\x01", size: ")", stride: ")",
			want: []tensorfile.Tensor{{Name: "w", DType: tensorfile.F32, Shape: []int64{}, Data: []byte{0, 0, 0, 0x40}}}},
		{name: "repeated by a zero stride", offset: "K\x00", size: "K\x02K\x01\x86", stride: "K\x00K\x01\x86",
			want: []tensorfile.Tensor{{Name: "w", DType: tensorfile.F32, Shape: []int64{2, 1}, Data: []byte{0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f}}}},
		{name: "past the end", offset: "K\x01", size: "K\x02\x85", stride: "K\x01\x85",
			wantErr: `tensor "w": size [2], stride [1] and offset 1 reach past the end of its storage of 2 elements`},
		{name: "negative offset", offset: "J\xff\xff\xff\xff", size: "K\x01\x85", stride: "K\x01\x85",
			wantErr: `tensor "w": storage offset -1 is outside its storage of 2 elements`},
		{name: "negative stride", offset: "K\x01", size: "K\x02\x85", stride: "J\xff\xff\xff\xff\x85",
			wantErr: `tensor "w": stride [-1] is negative`},
		{name: "huge stride", offset: "K\x00", size: "K\x02\x85", stride: "\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x85",
			wantErr: `reach past the end of its storage`},
		{name: "rank mismatch", offset: "K\x00", size: "K\x02\x85", stride: ")",
			wantErr: `tensor "w": size [2] and stride [] differ in length`},
		{name: "size not a tuple", offset: "K\x00", size: "K\x02", stride: "K\x01\x85",
			wantErr: "_rebuild_tensor called with an invalid size: got a value of type int, want a tuple"},
		{name: "expanded beyond the copy limit", offset: "K\x00", size: "\x8a\x06\x00\x00\x00\x00\x00\x01\x85", stride: "K\x00\x85",
			wantErr: `tensor "w": its strides would need more memory than the whole checkpoint; the file looks crafted`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.pth")
			data := legacyPrefix + handMadeTensor(tt.offset, tt.size, tt.stride) + handMadeStorage
			require.NoError(t, os.WriteFile(path, []byte(data), 0o644))
			got, err := tensorfile.ReadPTH(path)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestReadPTHBigEndianZip(t *testing.T) {
	dir, _ := fixtureDir(t)
	path := filepath.Join(t.TempDir(), "big.pth")
	rewriteZip(t, filepath.Join(dir, "views_zip.pth"), path, map[string]string{"views_zip/byteorder": "big"})
	_, err := tensorfile.ReadPTH(path)
	require.EqualError(t, err, "tensorfile: "+path+`: the checkpoint's byte order is "big"; only little-endian checkpoints are supported`)
}

// rewriteZip copies the zip archive src to dst, adding the records of extra.
func rewriteZip(t *testing.T, src, dst string, extra map[string]string) {
	t.Helper()
	zr, err := zip.OpenReader(src)
	require.NoError(t, err)
	defer zr.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		require.NoError(t, err)
		r, err := f.Open()
		require.NoError(t, err)
		_, err = io.Copy(w, r)
		require.NoError(t, err)
		r.Close()
	}
	for name, content := range extra {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		require.NoError(t, err)
		_, err = w.Write([]byte(content))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(dst, buf.Bytes(), 0o644))
}

func TestReadBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(garbage)
	files := map[string][]byte{
		"empty.pth":        {},
		"garbage.pth":      garbage,
		"pickle-ish.pth":   append([]byte{0x80, 0x02}, garbage...),
		"zip-ish.pth":      append([]byte("PK\x03\x04"), garbage...),
		"text.pth":         []byte("hello, world\n"),
		"safetensors.pth":  []byte("\x02\x00\x00\x00\x00\x00\x00\x00{}"),
		"short.safetensor": []byte("\x02\x00"),
	}
	for name, data := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	tests := []struct {
		file string
		read func(string) ([]tensorfile.Tensor, error)
		want string
	}{
		{"missing.pth", tensorfile.ReadPTH, "cannot open: no such file or directory"},
		{"missing.pth", tensorfile.Read, "cannot open: no such file or directory"},
		{"", tensorfile.ReadPTH, "is a directory, not a file"},
		{"empty.pth", tensorfile.ReadPTH, "the file is empty"},
		{"empty.pth", tensorfile.Read, "the file is empty"},
		{"garbage.pth", tensorfile.ReadPTH, "not a PyTorch checkpoint: it is neither a zip archive nor a pickle"},
		{"garbage.pth", tensorfile.Read, "unknown format: neither a PyTorch checkpoint nor a safetensors file"},
		{"text.pth", tensorfile.Read, "unknown format"},
		{"pickle-ish.pth", tensorfile.ReadPTH, "reading the magic number: pickle opcode"},
		{"pickle-ish.pth", tensorfile.Read, "reading the magic number: pickle opcode"},
		{"zip-ish.pth", tensorfile.ReadPTH, "not a valid zip archive (it may be truncated or corrupt)"},
		{"zip-ish.pth", tensorfile.Read, "not a valid zip archive"},
		{"safetensors.pth", tensorfile.ReadPTH, "this is a safetensors file, not a PyTorch checkpoint"},
		{"short.safetensor", tensorfile.Read, "unknown format"},
		{"short.safetensor", readSafetensors, "the file is truncated: it has 2 bytes, fewer than the 8 of the header length"},
		{"missing.pth", readSafetensors, "cannot open: no such file or directory"},
		{"empty.pth", readSafetensors, "the file is empty"},
		{"garbage.pth", readSafetensors, "the header length 5721121980023635282 is over the limit"},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, tt.file)
		t.Run(tt.file, func(t *testing.T) {
			tensors, err := tt.read(path)
			require.Nil(t, tensors)
			require.ErrorContains(t, err, "tensorfile: "+path+": "+tt.want)
		})
	}
}

func readSafetensors(path string) ([]tensorfile.Tensor, error) {
	tensors, _, err := tensorfile.ReadSafetensors(path)
	return tensors, err
}

// TestReadTruncated feeds truncations of real checkpoints at many lengths:
// every one must be an error, never a panic.
func TestReadTruncated(t *testing.T) {
	dir, _ := fixtureDir(t)
	for _, file := range []string{"views_zip.pth", "views_legacy.pth", "resnet18_zip.pth", "resnet18_legacy.pth"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, file))
			require.NoError(t, err)
			lengths := []int{1, 2, 9, 100, 1000, len(data) / 3, len(data) / 2, len(data) - 9, len(data) - 1}
			if len(data) < 1<<16 {
				lengths = lengths[:0]
				for n := 0; n < len(data); n++ {
					lengths = append(lengths, n)
				}
			}
			path := filepath.Join(t.TempDir(), file)
			for _, n := range lengths {
				require.NoError(t, os.WriteFile(path, data[:n], 0o644))
				_, err := tensorfile.ReadPTH(path)
				require.Error(t, err, "truncated to %d bytes", n)
				_, err = tensorfile.Read(path)
				require.Error(t, err, "truncated to %d bytes", n)
			}
		})
	}
}

// TestReadCorrupted flips every byte of small real checkpoints in turn: the
// result may be an error or, where the byte does not matter, tensors, but
// never a panic.
func TestReadCorrupted(t *testing.T) {
	dir, _ := fixtureDir(t)
	for _, file := range []string{"views_zip.pth", "views_legacy.pth"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, file))
			require.NoError(t, err)
			path := filepath.Join(t.TempDir(), file)
			corrupt := make([]byte, len(data))
			for i := range data {
				copy(corrupt, data)
				corrupt[i] ^= 0xff
				require.NoError(t, os.WriteFile(path, corrupt, 0o644))
				tensors, err := tensorfile.Read(path)
				if err == nil {
					requireConsistent(t, tensors)
				}
			}
		})
	}
}

// FuzzRead checks that no input makes Read panic. Without -fuzz it runs the
// seeds: a hand-made legacy checkpoint and safetensors file (the real
// checkpoints are covered by TestReadTruncated and TestReadCorrupted).
func FuzzRead(f *testing.F) {
	f.Add([]byte(legacyPrefix + handMadeTensor("K\x00", "K\x02\x85", "K\x01\x85") + handMadeStorage))
	f.Add(handWrittenSafetensors)
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "fuzz")
		require.NoError(t, os.WriteFile(path, data, 0o644))
		tensors, err := tensorfile.Read(path)
		if err == nil {
			requireConsistent(t, tensors)
		}
	})
}

// requireConsistent checks that each tensor has a known dtype, a non-nil
// shape and as many bytes of data as its shape and dtype need.
func requireConsistent(t *testing.T, tensors []tensorfile.Tensor) {
	t.Helper()
	for _, tensor := range tensors {
		require.NotZero(t, tensor.DType.Size(), tensor.Name)
		require.NotNil(t, tensor.Shape, tensor.Name)
		n := tensor.DType.Size()
		for _, d := range tensor.Shape {
			n *= int(d)
		}
		require.Len(t, tensor.Data, n, tensor.Name)
	}
}
