package data

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/disintegration/imaging"
)

// RandomRotation rotates an image counter-clockwise by an angle drawn
// uniformly from [-Degrees, Degrees], as torchvision's
// transforms.RandomRotation(Degrees): about the image centre, keeping its
// size (expand=False), nearest-neighbour sampling, corners filled black.
type RandomRotation struct {
	Degrees float64
}

// Apply rotates img by a random angle.
func (t RandomRotation) Apply(img *image.NRGBA, r *rand.Rand) *image.NRGBA {
	return rotate(img, uniform(r, -t.Degrees, t.Degrees))
}

// Random reports true.
func (RandomRotation) Random() bool { return true }

func (t RandomRotation) validate() error {
	if !(t.Degrees >= 0 && t.Degrees <= 180) {
		return fmt.Errorf("RandomRotation: degrees %v must be in [0, 180]", t.Degrees)
	}
	return nil
}

// rotate turns img counter-clockwise by angle degrees as PIL's
// Image.rotate(angle, NEAREST, expand=False, fillcolor=black): the same
// fast paths, the same affine matrix rounded to 15 decimals and the same
// incremental nearest-neighbour scan (in 16.16 fixed point unless the image
// is too large for it), so the output is identical.
func rotate(img *image.NRGBA, angle float64) *image.NRGBA {
	angle = math.Mod(angle, 360) // Python's %: the sign of the divisor
	if angle < 0 {
		angle += 360
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	switch {
	case angle == 0:
		return cloneNRGBA(img)
	case angle == 180:
		return imaging.Rotate180(img)
	case angle == 90 && w == h:
		return imaging.Rotate90(img)
	case angle == 270 && w == h:
		return imaging.Rotate270(img)
	}

	rad := -(angle * degToRad)
	a := round15(math.Cos(rad))
	bb := round15(math.Sin(rad))
	d := round15(-math.Sin(rad))
	e := round15(math.Cos(rad))
	cx, cy := float64(w)/2, float64(h)/2
	c := float64(a*-cx) + float64(bb*-cy) + cx
	f := float64(d*-cx) + float64(e*-cy) + cy

	m := [6]float64{a, bb, c, d, e, f}
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 3; i < len(dst.Pix); i += 4 {
		dst.Pix[i] = 0xff
	}
	put := func(x, y, xin, yin int) {
		if xin >= 0 && xin < w && yin >= 0 && yin < h {
			s := img.PixOffset(b.Min.X+xin, b.Min.Y+yin)
			copy(dst.Pix[y*dst.Stride+4*x:y*dst.Stride+4*x+3], img.Pix[s:s+3])
		}
	}
	if fitsFixed(m, 0, 0) && fitsFixed(m, w, h) && fitsFixed(m, 0, h) && fitsFixed(m, w, 0) {
		affineFixed(m, w, h, put)
	} else {
		affineFloat(m, w, h, put)
	}
	return dst
}

// fitsFixed is PIL's check_fixed: whether point (x, y) maps into the range
// of 16.16 fixed-point numbers.
func fitsFixed(m [6]float64, x, y int) bool {
	return math.Abs(float64(float64(x)*m[0])+float64(float64(y)*m[1])+m[2]) < 32768 &&
		math.Abs(float64(float64(x)*m[3])+float64(float64(y)*m[4])+m[5]) < 32768
}

// affineFixed is PIL's affine_fixed: for each output pixel (x, y) it calls
// put with the source pixel that matrix m maps its centre to, computed in
// 16.16 fixed point.
func affineFixed(m [6]float64, w, h int, put func(x, y, xin, yin int)) {
	fix := func(v float64) int32 { return int32(math.Floor(float64(v*65536) + 0.5)) }
	a0, a1, a3, a4 := fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4])
	a2 := fix(m[2] + float64(m[0]*0.5) + float64(m[1]*0.5))
	a5 := fix(m[5] + float64(m[3]*0.5) + float64(m[4]*0.5))
	for y := range h {
		xx, yy := a2, a5
		for x := range w {
			put(x, y, int(xx>>16), int(yy>>16))
			xx += a0
			yy += a3
		}
		a2 += a1
		a5 += a4
	}
}

// affineFloat is the floating-point scan of PIL's ImagingTransformAffine,
// used when the image is too large for fixed point.
func affineFloat(m [6]float64, w, h int, put func(x, y, xin, yin int)) {
	xo := m[2] + float64(m[1]*0.5) + float64(m[0]*0.5)
	yo := m[5] + float64(m[4]*0.5) + float64(m[3]*0.5)
	for y := range h {
		xx, yy := xo, yo
		for x := range w {
			put(x, y, coord(xx), coord(yy))
			xx += m[0]
			yy += m[3]
		}
		xo += m[1]
		yo += m[4]
	}
}

// degToRad is math.radians's factor; the exact constant rounds to the same
// float64 as CPython's float64(pi)/180.
const degToRad = math.Pi / 180

// round15 rounds x to 15 decimal places, correctly rounded, as Python's
// round(x, 15).
func round15(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 15, 64), 64) // always parses
	return v
}

// coord is PIL's COORD macro: -1 for negatives, truncation otherwise.
func coord(v float64) int {
	if v < 0 {
		return -1
	}
	return int(v)
}
