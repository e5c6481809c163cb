package plot

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/finetune-go/finetune/finetune"
	"github.com/stretchr/testify/require"
)

func TestPlots(t *testing.T) {
	var b bytes.Buffer
	require.Error(t, Curves(&b, nil))
	history := []finetune.EpochMetrics{
		{Stage: "head", Epoch: 1, TrainLoss: 0.7, ValLoss: 0.6, TrainAccuracy: 0.5, ValAccuracy: 0.6},
		{Stage: "finetune", Epoch: 1, TrainLoss: 0.3, ValLoss: 0.4, TrainAccuracy: 0.9, ValAccuracy: 0.8, Best: true},
	}
	require.NoError(t, Curves(&b, history))
	cfg, err := png.DecodeConfig(&b)
	require.NoError(t, err)
	require.Equal(t, [2]int{1100, 480}, [2]int{cfg.Width, cfg.Height})

	b.Reset()
	require.Error(t, Confusion(&b, finetune.NewConfusion(nil), "none"))
	conf := finetune.NewConfusion([]string{"cat", "dog", "bird"})
	conf.Add([]int64{0, 1, 2, 2}, []int64{0, 1, 1, 2})
	require.NoError(t, Confusion(&b, conf, "validation"))
	img, err := png.Decode(&b)
	require.NoError(t, err)
	require.Greater(t, img.Bounds().Dx(), 3*64)
}

// solid is a side×side image of one colour.
func solid(side int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return img
}

// TestAugmentGrid: every evaluation view and every draw is a tile of the
// picture, where AugmentGrid says.
func TestAugmentGrid(t *testing.T) {
	colour := func(i, j int) color.NRGBA { return color.NRGBA{uint8(40 * i), uint8(30 * j), 200, 255} }
	var samples []finetune.AugmentSample
	for i := range 3 {
		s := finetune.AugmentSample{Path: fmt.Sprintf("data/c/%d.png", i), Eval: solid(32, colour(i, 0))}
		for j := range 3 - i%2 {
			s.Train = append(s.Train, solid(32, colour(i, j+1)))
		}
		samples = append(samples, s)
	}
	var b bytes.Buffer
	require.NoError(t, Augment(&b, samples))
	img, err := png.Decode(&b)
	require.NoError(t, err)
	l := AugmentGrid(samples)
	require.Equal(t, 96, l.Tile)
	require.Equal(t, l.Top+3*(l.Tile+l.Caption+l.Pad), img.Bounds().Dy())
	for i, s := range samples {
		y := l.Top + i*(l.Tile+l.Caption+l.Pad) + l.Tile/2
		for j := range 1 + len(s.Train) {
			x := l.Pad + j*(l.Tile+l.Pad) + l.Tile/2
			if j > 0 {
				x += l.Pad
			}
			r, g, bl, _ := img.At(x, y).RGBA()
			want := colour(i, j)
			require.Equal(t, [3]uint8{want.R, want.G, want.B}, [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}, "row %d tile %d", i, j)
		}
	}
	require.Error(t, Augment(&b, nil))
}
