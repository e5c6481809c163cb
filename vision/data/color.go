package data

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
)

// ColorJitter randomly changes brightness, contrast, saturation and hue, as
// torchvision's transforms.ColorJitter on a PIL image. Brightness, contrast
// and saturation factors are drawn uniformly from [max(0, 1-v), 1+v] and
// the hue shift from [-Hue, Hue] (a fraction of the hue circle, at most
// 0.5); a zero field leaves that property alone. The four adjustments run
// in a random order, each computed as PIL computes it.
type ColorJitter struct {
	Brightness, Contrast, Saturation, Hue float64
}

// Apply draws the order and the factors from r, in torchvision's order,
// and adjusts img.
func (t ColorJitter) Apply(img *image.NRGBA, r *rand.Rand) *image.NRGBA {
	order := r.Perm(4)
	factors := [4]float64{
		t.factor(r, t.Brightness),
		t.factor(r, t.Contrast),
		t.factor(r, t.Saturation),
		0,
	}
	if t.Hue != 0 {
		factors[3] = uniform(r, -t.Hue, t.Hue)
	}
	enabled := [4]bool{t.Brightness != 0, t.Contrast != 0, t.Saturation != 0, t.Hue != 0}
	for _, fn := range order {
		if !enabled[fn] {
			continue
		}
		switch fn {
		case 0:
			img = adjustBrightness(img, factors[0])
		case 1:
			img = adjustContrast(img, factors[1])
		case 2:
			img = adjustSaturation(img, factors[2])
		case 3:
			img = adjustHue(img, factors[3])
		}
	}
	return img
}

// factor draws a multiplicative factor for jitter strength v, or returns
// 1 without drawing when v is zero, as torchvision.
func (ColorJitter) factor(r *rand.Rand, v float64) float64 {
	if v == 0 {
		return 1
	}
	return uniform(r, max(0, 1-v), 1+v)
}

// Random reports true.
func (ColorJitter) Random() bool { return true }

func (t ColorJitter) validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"brightness", t.Brightness}, {"contrast", t.Contrast}, {"saturation", t.Saturation}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return fmt.Errorf("ColorJitter: %s %v must be a non-negative number", f.name, f.v)
		}
	}
	if !(t.Hue >= 0 && t.Hue <= 0.5) {
		return fmt.Errorf("ColorJitter: hue %v must be in [0, 0.5]", t.Hue)
	}
	return nil
}

// adjustBrightness is torchvision's F.adjust_brightness on a PIL image:
// PIL's ImageEnhance.Brightness, a blend with black.
func adjustBrightness(img *image.NRGBA, f float64) *image.NRGBA {
	return blend(image.NewNRGBA(img.Bounds()), img, f)
}

// adjustContrast is PIL's ImageEnhance.Contrast: a blend with a uniform
// grey image at the rounded mean of the image's luma.
func adjustContrast(img *image.NRGBA, f float64) *image.NRGBA {
	var sum int
	for i := 0; i < len(img.Pix); i += 4 {
		sum += int(luma(img.Pix[i : i+3 : i+3]))
	}
	n := img.Bounds().Dx() * img.Bounds().Dy()
	mean := uint8(float64(sum)/float64(n) + 0.5)
	grey := image.NewNRGBA(img.Bounds())
	for i := 0; i < len(grey.Pix); i += 4 {
		grey.Pix[i], grey.Pix[i+1], grey.Pix[i+2] = mean, mean, mean
	}
	return blend(grey, img, f)
}

// adjustSaturation is PIL's ImageEnhance.Color: a blend with the image's
// grayscale (PIL "L") version.
func adjustSaturation(img *image.NRGBA, f float64) *image.NRGBA {
	grey := image.NewNRGBA(img.Bounds())
	for i := 0; i < len(img.Pix); i += 4 {
		l := luma(img.Pix[i : i+3 : i+3])
		grey.Pix[i], grey.Pix[i+1], grey.Pix[i+2] = l, l, l
	}
	return blend(grey, img, f)
}

// luma is PIL's RGB to "L" conversion (ITU-R 601-2 in 16-bit fixed point).
func luma(p []uint8) uint8 {
	return uint8((int(p[0])*19595 + int(p[1])*38470 + int(p[2])*7471 + 0x8000) >> 16)
}

// blend returns a + alpha*(b-a) per channel as PIL's Image.blend: in C
// float arithmetic, truncated, clipped when alpha is outside [0, 1]. The
// result is opaque.
func blend(a, b *image.NRGBA, alpha float64) *image.NRGBA {
	al := float32(alpha)
	dst := image.NewNRGBA(b.Bounds())
	for i := 0; i < len(dst.Pix); i += 4 {
		for c := range 3 {
			t := float32(a.Pix[i+c]) + float32(al*float32(int(b.Pix[i+c])-int(a.Pix[i+c])))
			switch {
			case t <= 0:
				dst.Pix[i+c] = 0
			case t >= 255:
				dst.Pix[i+c] = 255
			default:
				dst.Pix[i+c] = uint8(t)
			}
		}
		dst.Pix[i+3] = 0xff
	}
	return dst
}

// adjustHue is torchvision's F.adjust_hue on a PIL image: convert to PIL's
// 8-bit HSV, add uint8(f*255) to the hue with wrap-around, convert back.
func adjustHue(img *image.NRGBA, f float64) *image.NRGBA {
	shift := uint8(int64(f * 255)) // numpy's float to uint8: truncate, wrap
	dst := image.NewNRGBA(img.Bounds())
	for i := 0; i < len(img.Pix); i += 4 {
		h, s, v := rgbToHSV(img.Pix[i], img.Pix[i+1], img.Pix[i+2])
		dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2] = hsvToRGB(h+shift, s, v)
		dst.Pix[i+3] = 0xff
	}
	return dst
}

// rgbToHSV is PIL's rgb2hsv, with its mix of float and double arithmetic.
func rgbToHSV(r, g, b uint8) (h, s, v uint8) {
	maxc, minc := max(r, g, b), min(r, g, b)
	if maxc == minc {
		return 0, 0, maxc
	}
	cr := float32(maxc - minc)
	sat := cr / float32(maxc)
	rc := float32(maxc-r) / cr
	gc := float32(maxc-g) / cr
	bc := float32(maxc-b) / cr
	var hue float32
	switch maxc {
	case r:
		hue = bc - gc
	case g:
		hue = float32(2.0 + float64(rc) - float64(bc))
	default:
		hue = float32(4.0 + float64(gc) - float64(rc))
	}
	hue = float32(math.Mod(float64(hue)/6.0+1.0, 1.0))
	return clipByte(int(float64(hue) * 255.0)), clipByte(int(float64(sat) * 255.0)), maxc
}

// hsvToRGB is PIL's hsv2rgb.
func hsvToRGB(h, s, v uint8) (r, g, b uint8) {
	if s == 0 {
		return v, v, v
	}
	hh := float64(float32(h)) * 6.0 / 255.0
	i := int(math.Floor(hh))
	f := float32(hh - float64(float32(i)))
	fs := float32(float64(s) / 255.0)
	fv := float64(v)
	p := clipByte(int(math.Round(fv * (1.0 - float64(fs)))))
	q := clipByte(int(math.Round(fv * (1.0 - float64(fs*f)))))
	t := clipByte(int(math.Round(fv * (1.0 - float64(float64(fs)*(1.0-float64(f)))))))
	switch i % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	}
	return v, p, q
}

// clipByte clamps v to [0, 255].
func clipByte(v int) uint8 {
	return uint8(min(max(v, 0), 255))
}
