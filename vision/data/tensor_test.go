package data

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestToCHWAndNormalizeMatchTorchvision(t *testing.T) {
	for _, c := range fixtures(t, "to_tensor", "normalize") {
		t.Run(c.name(), func(t *testing.T) {
			img := fixtureImage(t, c.Src)
			got := ToCHW(img)
			require.Equal(t, img.Bounds().Dy(), got.Height)
			require.Equal(t, img.Bounds().Dx(), got.Width)
			if c.Kind == "normalize" {
				n := Normalize{Mean: [3]float32(c.Mean), Std: [3]float32(c.Std)}
				require.Equal(t, ImageNet, n)
				n.Apply(got)
			}
			want := fixtureFloats(t, c.Want)
			require.Len(t, got.Data, len(want))
			var mismatches int
			for i := range want {
				require.InDelta(t, want[i], got.Data[i], 1e-6, "element %d", i)
				if want[i] != got.Data[i] {
					mismatches++
				}
			}
			t.Logf("%d of %d values differ from torchvision in the last bits", mismatches, len(want))
			require.Zero(t, mismatches)
		})
	}
}

func TestToCHWLayout(t *testing.T) {
	img := fixtureImage(t, "src_97x31.png")
	got := ToCHW(img)
	for _, p := range [][2]int{{0, 0}, {96, 0}, {0, 30}, {50, 17}} {
		x, y := p[0], p[1]
		px := img.NRGBAAt(x, y)
		for c, v := range []uint8{px.R, px.G, px.B} {
			require.Equal(t, float32(v)/255, got.Data[c*31*97+y*97+x], "channel %d at (%d,%d)", c, x, y)
		}
	}
}
