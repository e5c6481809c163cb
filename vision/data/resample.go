package data

import (
	"image"
	"math"
)

// precisionBits is the fixed-point precision of PIL's 8-bit resampling.
const precisionBits = 32 - 8 - 2

// resizeBilinear resizes src to w×h with PIL's Image.resize(size,
// Image.BILINEAR): a triangle filter widened by the scale factor when
// shrinking (so it antialiases), applied horizontally then vertically with
// PIL's fixed-point coefficients and rounding, so the output is the same,
// byte for byte. imaging.Resize with imaging.Linear computes the same
// filter in floating point and differs from PIL by one level here and there.
func resizeBilinear(src *image.NRGBA, w, h int) *image.NRGBA {
	b := src.Bounds()
	if b.Dx() == w && b.Dy() == h {
		return cloneNRGBA(src)
	}
	out := src
	if b.Dx() != w {
		out = resampleHorizontal(out, w)
	}
	if b.Dy() != h {
		out = resampleVertical(out, h)
	}
	return out
}

// kernel holds one pass's coefficients: output pixel i reads inputs
// start[i] to start[i]+len(weights[i])-1 with fixed-point weights.
type kernel struct {
	start   []int
	weights [][]int32
}

// bilinearKernel computes PIL's precompute_coeffs and
// normalize_coeffs_8bpc for the bilinear filter, which has support 1.
func bilinearKernel(inSize, outSize int) kernel {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1.0)
	support := filterScale // bilinear support 1.0 times filterScale
	k := kernel{start: make([]int, outSize), weights: make([][]int32, outSize)}
	pre := make([]float64, int(math.Ceil(support))*2+1)
	for xx := range outSize {
		center := (float64(xx) + 0.5) * scale
		ss := 1.0 / filterScale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		var ww float64
		for x := range xmax {
			w := triangle(float64(float64(x+xmin)-center+0.5) * ss)
			pre[x] = w
			ww += w
		}
		fixed := make([]int32, xmax)
		for x := range xmax {
			w := pre[x]
			if ww != 0 {
				w /= ww
			}
			scaled := float64(w * (1 << precisionBits))
			if w < 0 {
				fixed[x] = int32(-0.5 + scaled)
			} else {
				fixed[x] = int32(0.5 + scaled)
			}
		}
		k.start[xx] = xmin
		k.weights[xx] = fixed
	}
	return k
}

// triangle is PIL's bilinear_filter.
func triangle(x float64) float64 {
	x = math.Abs(x)
	if x < 1 {
		return 1 - x
	}
	return 0
}

// clip8 converts a fixed-point accumulator to a byte as PIL's clip8.
func clip8(v int64) uint8 {
	v >>= precisionBits
	switch {
	case v < 0:
		return 0
	case v > 255:
		return 255
	}
	return uint8(v)
}

func resampleHorizontal(src *image.NRGBA, w int) *image.NRGBA {
	b := src.Bounds()
	k := bilinearKernel(b.Dx(), w)
	dst := image.NewNRGBA(image.Rect(0, 0, w, b.Dy()))
	for y := range b.Dy() {
		row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
		out := dst.Pix[y*dst.Stride:]
		for xx := range w {
			r, g, bl := int64(1<<(precisionBits-1)), int64(1<<(precisionBits-1)), int64(1<<(precisionBits-1))
			for x, c := range k.weights[xx] {
				i := (k.start[xx] + x) * 4
				r += int64(row[i]) * int64(c)
				g += int64(row[i+1]) * int64(c)
				bl += int64(row[i+2]) * int64(c)
			}
			out[xx*4], out[xx*4+1], out[xx*4+2], out[xx*4+3] = clip8(r), clip8(g), clip8(bl), 0xff
		}
	}
	return dst
}

func resampleVertical(src *image.NRGBA, h int) *image.NRGBA {
	b := src.Bounds()
	k := bilinearKernel(b.Dy(), h)
	dst := image.NewNRGBA(image.Rect(0, 0, b.Dx(), h))
	for yy := range h {
		out := dst.Pix[yy*dst.Stride:]
		for x := range b.Dx() {
			r, g, bl := int64(1<<(precisionBits-1)), int64(1<<(precisionBits-1)), int64(1<<(precisionBits-1))
			for y, c := range k.weights[yy] {
				i := src.PixOffset(b.Min.X+x, b.Min.Y+k.start[yy]+y)
				r += int64(src.Pix[i]) * int64(c)
				g += int64(src.Pix[i+1]) * int64(c)
				bl += int64(src.Pix[i+2]) * int64(c)
			}
			out[x*4], out[x*4+1], out[x*4+2], out[x*4+3] = clip8(r), clip8(g), clip8(bl), 0xff
		}
	}
	return dst
}

// cloneNRGBA returns a copy of src with bounds at the origin.
func cloneNRGBA(src *image.NRGBA) *image.NRGBA {
	b := src.Bounds()
	dst := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		i := src.PixOffset(b.Min.X, b.Min.Y+y)
		copy(dst.Pix[y*dst.Stride:(y+1)*dst.Stride], src.Pix[i:i+4*b.Dx()])
	}
	return dst
}
