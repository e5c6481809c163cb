package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDecodeMatchesPIL compares Decode with PIL's
// Image.open(f).convert("RGB") (after ImageOps.exif_transpose for the EXIF
// files). Everything but JPEG must match exactly, lossy WebP included
// (VP8 decoding is bit-exact and the conversion follows libwebp). JPEG
// goes through Go's IDCT instead of libjpeg's, which differs by a few
// levels on a few pixels.
func TestDecodeMatchesPIL(t *testing.T) {
	bounds := map[string]struct {
		max  int
		mean float64
	}{
		"exact": {0, 0},
		// Same upsampling and colour conversion, a different IDCT:
		// measured at most 3 levels (4:2:2), means under 0.04.
		"jpeg": {4, 0.1},
	}
	for _, c := range fixtures(t, "decode") {
		t.Run(c.name(), func(t *testing.T) {
			b, ok := bounds[c.Tol]
			require.True(t, ok, "unknown tolerance %q", c.Tol)
			got, err := Decode(filepath.Join(fixtureDir, c.Src), 0)
			require.NoError(t, err)
			require.Equal(t, image.Point{}, got.Bounds().Min)
			maxDiff, meanDiff := pixelDiff(t, got, fixtureImage(t, c.Want))
			if c.Tol != "exact" {
				t.Logf("%s: max abs diff %d levels, mean %.3f", c.Src, maxDiff, meanDiff)
			}
			require.LessOrEqual(t, maxDiff, b.max, "mean diff %.3f", meanDiff)
			require.LessOrEqual(t, meanDiff, b.mean)
		})
	}
}

func TestJPEGOrientation(t *testing.T) {
	tests := []struct {
		name string
		exif []byte // TIFF structure after "Exif\0\0"; nil: no APP1
		want int
	}{
		{"no exif", nil, 1},
		{"little endian short", tiff(binary.LittleEndian, 3, 6), 6},
		{"big endian short", tiff(binary.BigEndian, 3, 8), 8},
		{"long type", tiff(binary.BigEndian, 4, 3), 3},
		{"out of range value", tiff(binary.LittleEndian, 3, 9), 1},
		{"zero value", tiff(binary.LittleEndian, 3, 0), 1},
		{"bad byte order", append([]byte("XX"), tiff(binary.LittleEndian, 3, 6)[2:]...), 1},
		{"truncated", tiff(binary.LittleEndian, 3, 6)[:12], 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, jpegOrientation(jpegWithExif(tt.exif)))
		})
	}
	require.Equal(t, 1, jpegOrientation(nil))
	require.Equal(t, 1, jpegOrientation([]byte{0xff, 0xd8, 0xff, 0xe1, 0xff, 0xff}))
}

// tiff builds a little TIFF structure whose IFD0 holds one orientation
// entry of the given field type.
func tiff(bo binary.ByteOrder, typ uint16, v uint32) []byte {
	b := make([]byte, 8+2+12+4)
	if bo == binary.LittleEndian {
		copy(b, "II")
	} else {
		copy(b, "MM")
	}
	bo.PutUint16(b[2:], 42)
	bo.PutUint32(b[4:], 8)
	bo.PutUint16(b[8:], 1)
	bo.PutUint16(b[10:], exifOrientationTag)
	bo.PutUint16(b[12:], typ)
	bo.PutUint32(b[14:], 1)
	if typ == 3 {
		bo.PutUint16(b[18:], uint16(v))
	} else {
		bo.PutUint32(b[18:], v)
	}
	return b
}

// jpegWithExif returns the start of a JPEG stream: SOI, an APP0, the Exif
// APP1 when exif is not nil, then a start of scan.
func jpegWithExif(exif []byte) []byte {
	out := []byte{0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 'J', 'F'}
	if exif != nil {
		seg := append([]byte("Exif\x00\x00"), exif...)
		out = append(out, 0xff, 0xe1, byte((len(seg)+2)>>8), byte(len(seg)+2))
		out = append(out, seg...)
	}
	return append(out, 0xff, 0xda, 0x00, 0x02)
}

func TestDecodeBadInput(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(fixtureDir, "src_64x48.png"))
	require.NoError(t, err)
	goodJPEG, err := os.ReadFile(filepath.Join(fixtureDir, "conv_444.jpg"))
	require.NoError(t, err)

	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	corrupt := bytes.Clone(good)
	copy(corrupt[60:], bytes.Repeat([]byte{0x5a}, 200)) // inside the IDAT stream
	dirPath := filepath.Join(dir, "folder.png")
	require.NoError(t, os.Mkdir(dirPath, 0o755))
	broken := filepath.Join(dir, "broken.jpg")
	require.NoError(t, os.Symlink(filepath.Join(dir, "missing.jpg"), broken))

	tests := []struct {
		name      string
		path      string
		maxPixels int
		wantErr   string
		tooLarge  bool
	}{
		{"zero-byte", write("empty.png", nil), 0, "empty file", false},
		{"not an image", write("text.jpg", []byte("hello, world")), 0, "unknown format", false},
		{"truncated png", write("trunc.png", good[:len(good)/2]), 0, "not enough pixel data", false},
		{"truncated jpeg", write("trunc.jpg", goodJPEG[:len(goodJPEG)/3]), 0, "EOF", false},
		{"header only", write("header.png", good[:40]), 0, "", false},
		{"corrupt data", write("corrupt.png", corrupt), 0, "", false},
		{"missing", filepath.Join(dir, "nope.png"), 0, "no such file", false},
		{"directory", dirPath, 0, "is a directory", false},
		{"broken symlink", broken, 0, "no such file", false},
		{"over the limit", write("big.png", good), 64*48 - 1, "64x48 png image has more than 3071 pixels", true},
		{"bomb header", write("bomb.png", pngHeader(100000, 100000)), 0, "100000x100000 png image", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Decode(tt.path, tt.maxPixels)
			require.Error(t, err)
			require.Nil(t, img)
			require.Contains(t, err.Error(), tt.path)
			require.Contains(t, err.Error(), tt.wantErr)
			require.Equal(t, tt.tooLarge, errors.Is(err, ErrTooLarge))
		})
	}

	// At the limit exactly, the image decodes.
	img, err := Decode(write("ok.png", good), 64*48)
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 64, 48), img.Bounds())
}

// pngHeader returns a PNG signature and IHDR chunk declaring a w×h RGB
// image, and nothing else: what a decompression bomb shows DecodeConfig.
func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	chunk := append([]byte("IHDR"), ihdr...)
	out := []byte("\x89PNG\r\n\x1a\n")
	out = binary.BigEndian.AppendUint32(out, 13)
	out = append(out, chunk...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(chunk))
}

// TestDecodeDropsAlpha checks the RGBA rule on an image written here: the
// colour under a fully transparent pixel survives, as in PIL.
func TestDecodeDropsAlpha(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	src.SetNRGBA(0, 0, color.NRGBA{R: 200, G: 100, B: 50, A: 0})
	src.SetNRGBA(1, 0, color.NRGBA{R: 10, G: 20, B: 30, A: 128})
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, src))
	p := filepath.Join(t.TempDir(), "alpha.png")
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o644))
	img, err := Decode(p, 0)
	require.NoError(t, err)
	require.Equal(t, []uint8{200, 100, 50, 255, 10, 20, 30, 255}, img.Pix)
}

// TestDecodeRecoversDecoderPanic registers a format whose decoder panics:
// Decode must turn the panic into an error naming the file.
func TestDecodeRecoversDecoderPanic(t *testing.T) {
	image.RegisterFormat("panicky", "PANICKY!",
		func(io.Reader) (image.Image, error) { panic("boom") },
		func(io.Reader) (image.Config, error) { return image.Config{Width: 1, Height: 1}, nil })
	p := filepath.Join(t.TempDir(), "x.png")
	require.NoError(t, os.WriteFile(p, []byte("PANICKY!"), 0o644))
	img, err := Decode(p, 0)
	require.Nil(t, img)
	require.ErrorContains(t, err, p+": decoder panic: boom")
}

// FuzzDecode checks that no input makes Decode panic and that what it
// returns is an opaque image at the origin.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"conv_420.jpg", "exif_6.jpg", "conv_p_trns.png", "conv.gif", "conv.bmp", "conv_lossy.webp", "conv_rgba_lossless.webp"} {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name))
		require.NoError(f, err)
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "in")
		require.NoError(t, os.WriteFile(p, b, 0o644))
		img, err := Decode(p, 1<<20)
		if err != nil {
			require.Contains(t, err.Error(), p)
			return
		}
		require.Equal(t, image.Point{}, img.Bounds().Min)
		require.False(t, img.Bounds().Empty())
		for i := 3; i < len(img.Pix); i += 4 {
			require.Equal(t, uint8(0xff), img.Pix[i])
		}
	})
}

func FuzzJPEGOrientation(f *testing.F) {
	f.Add(jpegWithExif(tiff(binary.LittleEndian, 3, 6)))
	f.Add(jpegWithExif(tiff(binary.BigEndian, 4, 8)))
	f.Fuzz(func(t *testing.T, b []byte) {
		o := jpegOrientation(b)
		require.True(t, o >= 1 && o <= 8, "orientation %d", o)
	})
}
