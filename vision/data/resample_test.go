package data

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// referenceResize is PIL's bilinear resampling written plainly, one
// output value at a time with PIL's own windows and 64-bit sums: the
// specification the optimised resizeBilinear (trimmed, fixed-size windows,
// two-tap loops, row accumulators) must meet exactly.
func referenceResize(src *image.NRGBA, w, h int) *image.NRGBA {
	coeffs := func(inSize, outSize int) (starts []int, weights [][]int64) {
		scale := float64(inSize) / float64(outSize)
		support := max(scale, 1.0)
		ss := 1 / support
		for xx := range outSize {
			center := (float64(xx) + 0.5) * scale
			xmin := max(int(center-support+0.5), 0)
			xmax := min(int(center+support+0.5), inSize) - xmin
			pre := make([]float64, xmax)
			var sum float64
			for x := range xmax {
				pre[x] = triangle((float64(x+xmin) - center + 0.5) * ss)
				sum += pre[x]
			}
			fixed := make([]int64, xmax)
			for x, v := range pre {
				if sum != 0 {
					v /= sum
				}
				fixed[x] = int64(0.5 + v*(1<<precisionBits))
			}
			starts, weights = append(starts, xmin), append(weights, fixed)
		}
		return starts, weights
	}
	clip := func(v int64) uint8 { return uint8(min(max(v>>precisionBits, 0), 255)) }
	pass := func(src *image.NRGBA, w, h int, horizontal bool) *image.NRGBA {
		b := src.Bounds()
		inSize, outSize := b.Dy(), h
		if horizontal {
			inSize, outSize = b.Dx(), w
		}
		starts, weights := coeffs(inSize, outSize)
		dst := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				o, i := y, x
				if horizontal {
					o, i = x, y
				}
				for c := range 3 {
					sum := int64(1) << (precisionBits - 1)
					for t, k := range weights[o] {
						px, py := b.Min.X+i, b.Min.Y+starts[o]+t
						if horizontal {
							px, py = b.Min.X+starts[o]+t, b.Min.Y+i
						}
						sum += int64(src.Pix[src.PixOffset(px, py)+c]) * k
					}
					dst.Pix[dst.PixOffset(x, y)+c] = clip(sum)
				}
				dst.Pix[dst.PixOffset(x, y)+3] = 0xff
			}
		}
		return dst
	}
	b := src.Bounds()
	out := src
	if b.Dx() != w {
		out = pass(out, w, b.Dy(), true)
	}
	if b.Dy() != h {
		out = pass(out, out.Bounds().Dx(), h, false)
	}
	if out == src {
		return cloneNRGBA(src)
	}
	return out
}

func TestResizeBilinearMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	full := textured(97, 83, 3)
	for range 60 {
		// A sub-image at a random offset, resized up, down or not at all
		// in each direction, to sizes from 1 pixel to about 2.5 times.
		sw, sh := 1+r.IntN(90), 1+r.IntN(80)
		x0, y0 := r.IntN(97-sw+1), r.IntN(83-sh+1)
		src := full.SubImage(image.Rect(x0, y0, x0+sw, y0+sh)).(*image.NRGBA)
		w := max(1, int(math.Round(float64(sw)*(0.05+2.5*r.Float64()))))
		h := max(1, int(math.Round(float64(sh)*(0.05+2.5*r.Float64()))))
		if r.IntN(4) == 0 {
			h = sh
		}
		t.Run(fmt.Sprintf("%dx%d->%dx%d", sw, sh, w, h), func(t *testing.T) {
			got := resizeBilinear(src, w, h)
			require.Equal(t, image.Rect(0, 0, w, h), got.Bounds())
			requireSamePixels(t, got, referenceResize(src, w, h))
		})
	}
}
