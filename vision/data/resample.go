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

// kernel holds one pass's coefficients in windows of a fixed number of
// taps: output pixel i sums inputs start[i] to start[i]+taps-1 weighted by
// weights[i*taps:(i+1)*taps]. A window that PIL makes shorter is padded
// with zero weights and shifted to stay inside the input, which leaves
// the sums unchanged.
type kernel struct {
	taps    int
	start   []int
	weights []int32
}

// bilinearKernel computes PIL's precompute_coeffs and
// normalize_coeffs_8bpc for the bilinear filter, which has support 1.
func bilinearKernel(inSize, outSize int) kernel {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1.0)
	support := filterScale // bilinear support 1.0 times filterScale
	starts := make([]int, outSize)
	windows := make([][]int32, outSize)
	taps := 0
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
		// Zero weights at the ends add nothing: trim them.
		for len(fixed) > 1 && fixed[0] == 0 {
			fixed, xmin = fixed[1:], xmin+1
		}
		for len(fixed) > 1 && fixed[len(fixed)-1] == 0 {
			fixed = fixed[:len(fixed)-1]
		}
		starts[xx], windows[xx] = xmin, fixed
		taps = max(taps, len(fixed))
	}
	k := kernel{taps: taps, start: starts, weights: make([]int32, taps*outSize)}
	for xx, fixed := range windows {
		s := min(starts[xx], inSize-taps)
		copy(k.weights[xx*taps+starts[xx]-s:], fixed)
		k.start[xx] = s
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

// half is the fixed-point rounding term PIL starts each sum with. The sums
// fit in int32, as in PIL: bilinear weights are positive and add up to
// 1<<precisionBits, so a sum is below 256<<precisionBits = 1<<30.
const half int32 = 1 << (precisionBits - 1)

// clip8 converts a fixed-point accumulator to a byte as PIL's clip8.
func clip8(v int32) uint8 {
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
		off := src.PixOffset(b.Min.X, b.Min.Y+y)
		row := src.Pix[off : off+4*b.Dx()]
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		if k.taps == 2 {
			resampleRow2(out, row, k)
		} else {
			resampleRow(out, row, k)
		}
	}
	return dst
}

// resampleRow resamples one row of pixels with kernel k.
func resampleRow(out, row []byte, k kernel) {
	n := k.taps
	for xx, s := range k.start {
		in := row[4*s : 4*(s+n)]
		ws := k.weights[xx*n : xx*n+n]
		r, g, b := half, half, half
		for x, c := range ws {
			p := in[4*x : 4*x+3 : 4*x+3]
			r += int32(p[0]) * c
			g += int32(p[1]) * c
			b += int32(p[2]) * c
		}
		o := out[4*xx : 4*xx+4 : 4*xx+4]
		o[0], o[1], o[2], o[3] = clip8(r), clip8(g), clip8(b), 0xff
	}
}

// resampleRow2 is resampleRow for the common kernel of two taps, which
// enlarging and mild shrinking use.
func resampleRow2(out, row []byte, k kernel) {
	ws := k.weights[:2*len(k.start)]
	for xx, s := range k.start {
		p := row[4*s : 4*s+7 : 4*s+7]
		c := ws[2*xx : 2*xx+2 : 2*xx+2]
		c0, c1 := c[0], c[1]
		r := half + int32(p[0])*c0 + int32(p[4])*c1
		g := half + int32(p[1])*c0 + int32(p[5])*c1
		b := half + int32(p[2])*c0 + int32(p[6])*c1
		o := out[4*xx : 4*xx+4 : 4*xx+4]
		o[0], o[1], o[2], o[3] = clip8(r), clip8(g), clip8(b), 0xff
	}
}

// resampleVertical sums whole weighted input rows into one accumulator
// row per output row, which reads memory in order. Alpha is summed with
// the colours, for a simpler loop, and then set to 255.
func resampleVertical(src *image.NRGBA, h int) *image.NRGBA {
	b := src.Bounds()
	k := bilinearKernel(b.Dy(), h)
	dst := image.NewNRGBA(image.Rect(0, 0, b.Dx(), h))
	n := 4 * b.Dx()
	row := func(y int) []byte {
		off := src.PixOffset(b.Min.X, b.Min.Y+y)
		return src.Pix[off : off+n]
	}
	var acc []int32
	for yy, s := range k.start {
		out := dst.Pix[yy*dst.Stride : yy*dst.Stride+n]
		ws := k.weights[yy*k.taps : (yy+1)*k.taps]
		if k.taps == 2 {
			sumRows2(out, row(s), row(s+1), ws[0], ws[1])
			continue
		}
		if acc == nil {
			acc = make([]int32, n)
		}
		for i := range acc {
			acc[i] = half
		}
		for y, c := range ws {
			in := row(s + y)
			acc := acc[:len(in)]
			for i, v := range in {
				acc[i] += int32(v) * c
			}
		}
		for i := 0; i+3 < len(out); i += 4 {
			a := acc[i : i+3 : i+3]
			o := out[i : i+4 : i+4]
			o[0], o[1], o[2], o[3] = clip8(a[0]), clip8(a[1]), clip8(a[2]), 0xff
		}
	}
	return dst
}

// sumRows2 is resampleVertical's output row for a kernel of two taps: the
// rows r0 and r1 weighted by c0 and c1.
func sumRows2(out, r0, r1 []byte, c0, c1 int32) {
	for i := 0; i+3 < len(out); i += 4 {
		a, b, o := r0[i:i+3:i+3], r1[i:i+3:i+3], out[i:i+4:i+4]
		o[0] = clip8(half + int32(a[0])*c0 + int32(b[0])*c1)
		o[1] = clip8(half + int32(a[1])*c0 + int32(b[1])*c1)
		o[2] = clip8(half + int32(a[2])*c0 + int32(b[2])*c1)
		o[3] = 0xff
	}
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
