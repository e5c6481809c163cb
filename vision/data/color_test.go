package data

import (
	"image"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestColorAdjustmentsMatchTorchvision(t *testing.T) {
	adjust := map[string]func(*image.NRGBA, float64) *image.NRGBA{
		"brightness": adjustBrightness,
		"contrast":   adjustContrast,
		"saturation": adjustSaturation,
		"hue":        adjustHue,
	}
	for _, c := range fixtures(t, "brightness", "contrast", "saturation", "hue") {
		t.Run(c.name(), func(t *testing.T) {
			got := adjust[c.Kind](fixtureImage(t, c.Src), c.Factor)
			requireSamePixels(t, got, fixtureImage(t, c.Want))
		})
	}
}

// TestHSVConversions checks PIL's 8-bit HSV round trip: exact on greys
// and primaries, lossy elsewhere because the hue has only 256 steps (the
// values below are PIL's own).
func TestHSVConversions(t *testing.T) {
	for v := range 256 {
		c := uint8(v)
		h, s, val := rgbToHSV(c, c, c)
		require.Equal(t, [3]uint8{0, 0, c}, [3]uint8{h, s, val})
		r, g, b := hsvToRGB(h, s, val)
		require.Equal(t, [3]uint8{c, c, c}, [3]uint8{r, g, b})
	}
	tests := []struct{ rgb, hsv, back [3]uint8 }{
		{[3]uint8{255, 0, 0}, [3]uint8{0, 255, 255}, [3]uint8{255, 0, 0}},
		{[3]uint8{0, 255, 0}, [3]uint8{85, 255, 255}, [3]uint8{0, 255, 0}},
		{[3]uint8{0, 0, 255}, [3]uint8{170, 255, 255}, [3]uint8{0, 0, 255}},
		{[3]uint8{255, 255, 0}, [3]uint8{42, 255, 255}, [3]uint8{255, 252, 0}},
		{[3]uint8{0, 255, 255}, [3]uint8{127, 255, 255}, [3]uint8{0, 255, 252}},
		{[3]uint8{255, 0, 255}, [3]uint8{212, 255, 255}, [3]uint8{252, 0, 255}},
		{[3]uint8{12, 200, 77}, [3]uint8{99, 239, 200}, [3]uint8{13, 200, 74}},
	}
	for _, tt := range tests {
		h, s, v := rgbToHSV(tt.rgb[0], tt.rgb[1], tt.rgb[2])
		require.Equal(t, tt.hsv, [3]uint8{h, s, v}, "rgb %v", tt.rgb)
		r, g, b := hsvToRGB(h, s, v)
		require.Equal(t, tt.back, [3]uint8{r, g, b}, "rgb %v", tt.rgb)
	}
}

func TestColorJitterDisabledFieldsAreIdentity(t *testing.T) {
	src := fixtureImage(t, "src_color.png")
	r := rand.New(rand.NewPCG(1, 1))
	requireSamePixels(t, ColorJitter{}.Apply(src, r), src)
	// Brightness only: the result is a pure brightness change of src with
	// some factor in [0.5, 1.5]; the mean level moves accordingly.
	out := ColorJitter{Brightness: 0.5}.Apply(src, r)
	ratio := meanLevel(out) / meanLevel(src)
	require.GreaterOrEqual(t, ratio, 0.45)
	require.LessOrEqual(t, ratio, 1.55)
}

func meanLevel(img *image.NRGBA) float64 {
	var sum int
	for i, p := range img.Pix {
		if i%4 != 3 {
			sum += int(p)
		}
	}
	return float64(sum) / float64(len(img.Pix)/4*3)
}
