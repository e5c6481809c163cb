package data

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDecodeTurboMatchesPIL runs DecodeTurbo over Decode's PIL fixtures:
// with libjpeg-turbo, the library PIL uses, JPEGs (CMYK, grayscale, every
// subsampling, EXIF orientations) must match PIL exactly, like the other
// formats.
func TestDecodeTurboMatchesPIL(t *testing.T) {
	for _, c := range fixtures(t, "decode") {
		t.Run(c.name(), func(t *testing.T) {
			got, err := DecodeTurbo(filepath.Join(fixtureDir, c.Src), 0)
			require.NoError(t, err)
			requireSamePixels(t, got, fixtureImage(t, c.Want))
		})
	}
}

// TestDecodeScaledMatchesPILDraft compares DCT-scaled decoding with PIL's
// Image.draft, which asks libjpeg-turbo for the same scale: the pixels
// must be PIL's, at every scale, for every JPEG flavour.
func TestDecodeScaledMatchesPILDraft(t *testing.T) {
	const dir = "testdata/draft"
	buf, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	var m struct {
		Cases []struct {
			Src     string `json:"src"`
			Scale   int    `json:"scale"`
			MinSide int    `json:"min_side"`
			Want    string `json:"want"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(buf, &m))
	require.NotEmpty(t, m.Cases)
	for _, c := range m.Cases {
		t.Run(fmt.Sprintf("%s/1:%d", c.Src, c.Scale), func(t *testing.T) {
			got, err := DecodeScaled(filepath.Join(dir, c.Src), c.MinSide, 0)
			require.NoError(t, err)
			want, err := Decode(filepath.Join(dir, c.Want), 0)
			require.NoError(t, err)
			requireSamePixels(t, got, want)
		})
	}
}

func TestScaleDenom(t *testing.T) {
	tests := []struct {
		w, h, minSide, want int
	}{
		{4000, 3000, 256, 8}, // 375 >= 256
		{4000, 3000, 375, 8}, // exactly
		{4000, 3000, 376, 4}, // 750
		{1000, 750, 256, 2},  // 375; 1/4 gives 188
		{600, 400, 256, 1},   // 1/2 gives 200
		{256, 256, 256, 1},   // never enlarge
		{100, 60, 300, 1},    // smaller than wanted
		{203, 141, 18, 8},    // 141/8 = 17.6, rounded up as libjpeg does
		{203, 141, 19, 4},    //
		{4000, 3000, 0, 1},   // no target: full size
		{4000, 3000, -5, 1},  //
		{3000, 4000, 500, 4}, // portrait: the shorter side is the width
		{1, 1, 1, 8},         // a 1×1 image scales to 1×1
		{17, 9000, 3, 8},     // 17/8 rounds up to 3
		{17, 9000, 4, 4},     // 17/4 rounds up to 5
		{17, 9000, 6, 2},     // 17/2 rounds up to 9
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dx%d>=%d", tt.w, tt.h, tt.minSide), func(t *testing.T) {
			require.Equal(t, tt.want, scaleDenom(tt.w, tt.h, tt.minSide))
		})
	}
}

// TestDecodeTurboBadInput checks that libjpeg's failures come back as
// errors naming the file (libjpeg's default would end the process).
func TestDecodeTurboBadInput(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(fixtureDir, "conv_444.jpg"))
	require.NoError(t, err)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	// A header declaring 60000×60000 pixels: the SOF0 segment's height
	// and width fields.
	bomb := bytes.Clone(good)
	sof := bytes.Index(bomb, []byte{0xff, 0xc0})
	require.Positive(t, sof)
	binary.BigEndian.PutUint16(bomb[sof+5:], 60000)
	binary.BigEndian.PutUint16(bomb[sof+7:], 60000)

	cfg, err := jpeg.DecodeConfig(bytes.NewReader(good))
	require.NoError(t, err)
	tests := []struct {
		name      string
		path      string
		maxPixels int
		wantErr   string
		tooLarge  bool
	}{
		{"zero-byte", write("empty.jpg", nil), 0, "empty file", false},
		{"truncated", write("trunc.jpg", good[:len(good)/3]), 0, "libjpeg: Premature end of JPEG file", false},
		{"header only", write("header.jpg", good[:200]), 0, "libjpeg: ", false},
		{"garbage after SOI", write("garbage.jpg", []byte("\xff\xd8hello, world")), 0, "libjpeg: ", false},
		{"missing", filepath.Join(dir, "nope.jpg"), 0, "no such file", false},
		{"over the limit", write("big.jpg", good), cfg.Width*cfg.Height - 1, "jpeg image has more than", true},
		{"bomb header", write("bomb.jpg", bomb), 0, "60000x60000 jpeg image", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := DecodeTurbo(tt.path, tt.maxPixels)
			require.Error(t, err)
			require.Nil(t, img)
			require.Contains(t, err.Error(), tt.path)
			require.Contains(t, err.Error(), tt.wantErr)
			require.Equal(t, tt.tooLarge, errors.Is(err, ErrTooLarge))
		})
	}

	t.Run("at the limit", func(t *testing.T) {
		img, err := DecodeTurbo(write("ok.jpg", good), cfg.Width*cfg.Height)
		require.NoError(t, err)
		require.Equal(t, image.Rect(0, 0, cfg.Width, cfg.Height), img.Bounds())
	})
	t.Run("corrupt data decodes, as in PIL", func(t *testing.T) {
		// Damage inside the entropy-coded data is a libjpeg warning, which
		// PIL ignores: the image decodes, with wrong pixels.
		corrupt := bytes.Clone(good)
		sos := bytes.Index(corrupt, []byte{0xff, 0xda})
		copy(corrupt[sos+40:], bytes.Repeat([]byte{0x00}, 64))
		img, err := DecodeTurbo(write("corrupt.jpg", corrupt), 0)
		require.NoError(t, err)
		require.Equal(t, image.Rect(0, 0, cfg.Width, cfg.Height), img.Bounds())
	})
	t.Run("a PNG named .jpg goes to Decode", func(t *testing.T) {
		png, err := os.ReadFile(filepath.Join(fixtureDir, "src_64x48.png"))
		require.NoError(t, err)
		got, err := DecodeTurbo(write("png.jpg", png), 0)
		require.NoError(t, err)
		requireSamePixels(t, got, fixtureImage(t, "src_64x48.png"))
	})
}

// BenchmarkDecodeJPEG compares the decoders on a 1024×768 JPEG of smooth
// shapes and mild noise, and DecodeScaled asked for a shorter side of 256,
// which decodes it at 1/2.
func BenchmarkDecodeJPEG(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, 1024, 768))
	for y := range 768 {
		for x := range 1024 {
			v := 128 + 100*math.Sin(float64(x)/40)*math.Cos(float64(y)/60)
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(x / 4), G: uint8(y / 3), B: uint8(v + 8*r.NormFloat64()), A: 0xff,
			})
		}
	}
	path := filepath.Join(b.TempDir(), "photo.jpg")
	f, err := os.Create(path)
	require.NoError(b, err)
	require.NoError(b, jpeg.Encode(f, img, &jpeg.Options{Quality: 90}))
	require.NoError(b, f.Close())
	for _, d := range []struct {
		name   string
		decode func() (*image.NRGBA, error)
	}{
		{"Decode", func() (*image.NRGBA, error) { return Decode(path, 0) }},
		{"DecodeTurbo", func() (*image.NRGBA, error) { return DecodeTurbo(path, 0) }},
		{"DecodeScaled256", func() (*image.NRGBA, error) { return DecodeScaled(path, 256, 0) }},
	} {
		b.Run(d.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := d.decode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDecodeTurbo checks that no input makes the libjpeg-turbo decoder the
// Loader uses crash or panic, at every DCT scale, and that what it
// returns is an opaque image at the origin within the pixel limit. The
// seeds are JPEGs of each kind it converts (4:2:0, 4:4:4, CMYK, grayscale,
// rotated by EXIF).
func FuzzDecodeTurbo(f *testing.F) {
	for _, name := range []string{"conv_420.jpg", "conv_444.jpg", "conv_cmyk.jpg", "conv_gray.jpg", "exif_6.jpg"} {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name))
		require.NoError(f, err)
		f.Add(b, uint8(0))
		f.Add(b, uint8(3))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte, minSide uint8) {
		p := filepath.Join(dir, "in.jpg")
		require.NoError(t, os.WriteFile(p, b, 0o644))
		const maxPixels = 1 << 20
		img, err := DecodeScaled(p, int(minSide), maxPixels)
		if err != nil {
			require.Contains(t, err.Error(), p)
			return
		}
		require.Equal(t, image.Point{}, img.Bounds().Min)
		require.False(t, img.Bounds().Empty())
		require.LessOrEqual(t, img.Bounds().Dx()*img.Bounds().Dy(), maxPixels)
		for i := 3; i < len(img.Pix); i += 4 {
			require.Equal(t, uint8(0xff), img.Pix[i])
		}
	})
}
