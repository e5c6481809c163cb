package data

import (
	"bytes"
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/disintegration/imaging"
	"github.com/stretchr/testify/require"
)

func TestResizeMatchesTorchvision(t *testing.T) {
	for _, c := range fixtures(t, "resize") {
		t.Run(c.name(), func(t *testing.T) {
			got := Resize{Size: c.Size}.Apply(fixtureImage(t, c.Src), nil)
			requireSamePixels(t, got, fixtureImage(t, c.Want))
		})
	}
}

// TestImagingLinearDiffersFromPIL records why resizing does not use
// imaging.Resize: its Linear filter is PIL's filter in floating point, and
// the rounding differs by a level here and there.
func TestImagingLinearDiffersFromPIL(t *testing.T) {
	var worst int
	var worstMean float64
	for _, c := range fixtures(t, "resize") {
		want := fixtureImage(t, c.Want)
		got := imaging.Resize(fixtureImage(t, c.Src), want.Bounds().Dx(), want.Bounds().Dy(), imaging.Linear)
		maxDiff, meanDiff := pixelDiff(t, got, want)
		worst, worstMean = max(worst, maxDiff), max(worstMean, meanDiff)
	}
	t.Logf("imaging.Linear vs PIL bilinear: max abs diff %d levels, worst mean %.4f levels", worst, worstMean)
	require.LessOrEqual(t, worst, 2)
}

func TestCenterCropMatchesTorchvision(t *testing.T) {
	for _, c := range fixtures(t, "center_crop") {
		t.Run(c.name(), func(t *testing.T) {
			got := CenterCrop{Height: c.H, Width: c.W}.Apply(fixtureImage(t, c.Src), nil)
			requireSamePixels(t, got, fixtureImage(t, c.Want))
		})
	}
}

func TestFlipsMatchTorchvision(t *testing.T) {
	for _, c := range fixtures(t, "hflip", "vflip") {
		t.Run(c.name(), func(t *testing.T) {
			var step Step = HorizontalFlip{P: 1}
			if c.Kind == "vflip" {
				step = VerticalFlip{P: 1}
			}
			src := fixtureImage(t, c.Src)
			got := step.Apply(src, rand.New(rand.NewPCG(1, 2)))
			requireSamePixels(t, got, fixtureImage(t, c.Want))
			// P = 0 never flips.
			same := HorizontalFlip{P: 0}.Apply(src, rand.New(rand.NewPCG(1, 2)))
			requireSamePixels(t, same, src)
		})
	}
}

func TestResizedCropMatchesTorchvision(t *testing.T) {
	for _, c := range fixtures(t, "resized_crop") {
		t.Run(c.name(), func(t *testing.T) {
			crop := cropPad(fixtureImage(t, c.Src), image.Rect(c.Left, c.Top, c.Left+c.W, c.Top+c.H))
			got := resizeBilinear(crop, c.Size, c.Size)
			requireSamePixels(t, got, fixtureImage(t, c.Want))
		})
	}
}

func TestRotateMatchesTorchvision(t *testing.T) {
	for _, c := range fixtures(t, "rotate") {
		t.Run(c.name(), func(t *testing.T) {
			got := rotate(fixtureImage(t, c.Src), c.Angle)
			requireSamePixels(t, got, fixtureImage(t, c.Want))
		})
	}
}

func TestRotateExactCases(t *testing.T) {
	src := fixtureImage(t, "src_50x50.png")
	tests := []struct {
		name  string
		angle float64
		want  *image.NRGBA
	}{
		{"zero is identity", 0, src},
		{"360 is identity", 360, src},
		{"90 is transpose then vertical flip", 90, imaging.FlipV(imaging.Transpose(src))},
		{"-90 is transpose then horizontal flip", -90, imaging.FlipH(imaging.Transpose(src))},
		{"180 is both flips", 180, imaging.FlipH(imaging.FlipV(src))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireSamePixels(t, rotate(src, tt.angle), tt.want)
		})
	}
	// RandomRotation with zero degrees is the identity whatever r draws.
	requireSamePixels(t, RandomRotation{}.Apply(src, rand.New(rand.NewPCG(3, 4))), src)
}

func TestRandomResizedCropParams(t *testing.T) {
	tests := []struct {
		name          string
		width, height int
		crop          RandomResizedCrop
	}{
		{"default landscape", 640, 480, RandomResizedCrop{Size: 224, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}}},
		{"default portrait", 300, 500, RandomResizedCrop{Size: 224, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}}},
		{"tiny image", 3, 2, RandomResizedCrop{Size: 8, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}}},
		{"full scale", 100, 100, RandomResizedCrop{Size: 8, Scale: [2]float64{1, 1}, Ratio: [2]float64{1, 1}}},
		// Extreme shapes fall back to a central crop with a clamped ratio.
		{"very wide", 1000, 10, RandomResizedCrop{Size: 8, Scale: [2]float64{0.9, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}}},
		{"very tall", 10, 1000, RandomResizedCrop{Size: 8, Scale: [2]float64{0.9, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 8))
			bounds := image.Rect(0, 0, tt.width, tt.height)
			var areaSum float64
			const n = 2000
			for range n {
				p := tt.crop.Params(tt.width, tt.height, r)
				require.False(t, p.Empty(), "empty region %v", p)
				require.True(t, p.In(bounds), "region %v outside %v", p, bounds)
				areaSum += float64(p.Dx()*p.Dy()) / float64(tt.width*tt.height)
			}
			mean := areaSum / n
			require.LessOrEqual(t, mean, tt.crop.Scale[1]+0.05)
			require.Greater(t, mean, 0.0)
		})
	}
}

// TestRandomResizedCropDistribution checks the sampling on a large square
// image with scales small enough that the first attempt always fits: the
// area fraction is then uniform on the scale range (mean 0.29) and
// log(aspect ratio) uniform and symmetric about zero.
func TestRandomResizedCropDistribution(t *testing.T) {
	crop := RandomResizedCrop{Size: 224, Scale: [2]float64{0.08, 0.5}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}}
	r := rand.New(rand.NewPCG(11, 12))
	const n, side = 20000, 1000
	var areaSum, logRatioSum float64
	var centreX float64
	for range n {
		p := crop.Params(side, side, r)
		areaSum += float64(p.Dx()*p.Dy()) / (side * side)
		ratio := float64(p.Dx()) / float64(p.Dy())
		logRatioSum += math.Log(ratio)
		require.GreaterOrEqual(t, ratio, 0.74)
		require.LessOrEqual(t, ratio, 1.34)
		centreX += float64(p.Min.X+p.Max.X) / 2
	}
	require.InDelta(t, 0.29, areaSum/n, 0.01)
	require.InDelta(t, 0, logRatioSum/n, 0.01)
	require.InDelta(t, side/2, centreX/n, side*0.01)
}

func TestRandomStepsReproducible(t *testing.T) {
	src := fixtureImage(t, "src_64x48.png")
	steps := []Step{
		RandomResizedCrop{Size: 32, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}},
		HorizontalFlip{P: 0.5},
		VerticalFlip{P: 0.5},
		RandomRotation{Degrees: 30},
		ColorJitter{Brightness: 0.4, Contrast: 0.4, Saturation: 0.4, Hue: 0.1},
	}
	for _, s := range steps {
		require.True(t, s.Random(), "%T", s)
		a := s.Apply(src, rand.New(rand.NewPCG(5, 6)))
		b := s.Apply(src, rand.New(rand.NewPCG(5, 6)))
		requireSamePixels(t, a, b)
	}
	// The source is never modified.
	requireSamePixels(t, src, fixtureImage(t, "src_64x48.png"))
}

func TestFlipProbability(t *testing.T) {
	src := fixtureImage(t, "src_64x48.png")
	flipped := imaging.FlipH(src)
	r := rand.New(rand.NewPCG(9, 10))
	var n int
	const trials = 2000
	for range trials {
		out := HorizontalFlip{P: 0.3}.Apply(src, r)
		if bytes.Equal(out.Pix, flipped.Pix) {
			n++
		}
	}
	require.InDelta(t, 0.3, float64(n)/trials, 0.04)
}
