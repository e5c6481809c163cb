package data

import (
	"encoding/binary"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
)

// Resize scales an image so that its shorter side is Size pixels, keeping
// the aspect ratio, as torchvision's transforms.Resize(Size) on a PIL
// image: the longer side becomes int(Size*long/short) and pixels are
// resampled with PIL's antialiased bilinear filter, exactly.
type Resize struct {
	Size int
}

// Apply returns the resized image; r is not used.
func (t Resize) Apply(img *image.NRGBA, _ *rand.Rand) *image.NRGBA {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	if w <= h {
		return resizeBilinear(img, t.Size, int(float64(t.Size*h)/float64(w)))
	}
	return resizeBilinear(img, int(float64(t.Size*w)/float64(h)), t.Size)
}

// Random reports false: Resize is deterministic.
func (Resize) Random() bool { return false }

func (t Resize) validate() error {
	if t.Size <= 0 {
		return fmt.Errorf("Resize: size %d must be positive", t.Size)
	}
	return nil
}

// CenterCrop cuts the central Height×Width region out of an image, as
// torchvision's transforms.CenterCrop: the offsets are round((h-Height)/2)
// and round((w-Width)/2) with Python's round-half-to-even, and an image
// smaller than the crop is first padded with black, as torchvision does.
type CenterCrop struct {
	Height, Width int
}

// Apply returns the cropped image; r is not used.
func (t CenterCrop) Apply(img *image.NRGBA, _ *rand.Rand) *image.NRGBA {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	// Padding as torchvision: floor half before, the rest after.
	padLeft, padTop := max(t.Width-w, 0)/2, max(t.Height-h, 0)/2
	padW, padH := max(t.Width-w, 0), max(t.Height-h, 0)
	top := int(math.RoundToEven(float64(h+padH-t.Height)/2)) - padTop
	left := int(math.RoundToEven(float64(w+padW-t.Width)/2)) - padLeft
	return cropPad(img, image.Rect(left, top, left+t.Width, top+t.Height))
}

// Random reports false: CenterCrop is deterministic.
func (CenterCrop) Random() bool { return false }

func (t CenterCrop) validate() error {
	if t.Height <= 0 || t.Width <= 0 {
		return fmt.Errorf("CenterCrop: size %dx%d must be positive", t.Height, t.Width)
	}
	return nil
}

// cropPad returns the region r of img, relative to its origin, as a new
// image; parts of r outside img are black, as PIL's Image.crop.
func cropPad(img *image.NRGBA, r image.Rectangle) *image.NRGBA {
	b := img.Bounds()
	dst := image.NewNRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	for i := 3; i < len(dst.Pix); i += 4 {
		dst.Pix[i] = 0xff
	}
	in := r.Intersect(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := in.Min.Y; y < in.Max.Y; y++ {
		s := img.PixOffset(b.Min.X+in.Min.X, b.Min.Y+y)
		d := dst.PixOffset(in.Min.X-r.Min.X, y-r.Min.Y)
		copy(dst.Pix[d:d+4*in.Dx()], img.Pix[s:s+4*in.Dx()])
	}
	return dst
}

// RandomResizedCrop crops a random region and resizes it to Size×Size, as
// torchvision's transforms.RandomResizedCrop: up to ten times it draws an
// area fraction uniformly from Scale and an aspect ratio (width/height)
// log-uniformly from Ratio, and takes the first region that fits at a
// uniformly drawn position; failing that it takes the largest central
// region whose ratio is clamped to Ratio. Resizing is PIL's bilinear.
type RandomResizedCrop struct {
	Size  int
	Scale [2]float64 // area fraction range, torchvision's default {0.08, 1}
	Ratio [2]float64 // aspect ratio range, torchvision's default {3/4, 4/3}
}

// Apply crops the region Params draws from r and resizes it.
func (t RandomResizedCrop) Apply(img *image.NRGBA, r *rand.Rand) *image.NRGBA {
	b := img.Bounds()
	region := t.Params(b.Dx(), b.Dy(), r).Add(b.Min) // inside img: no copy needed
	return resizeBilinear(img.SubImage(region).(*image.NRGBA), t.Size, t.Size)
}

// Random reports true.
func (RandomResizedCrop) Random() bool { return true }

// Params draws the crop region for a width×height image, following
// torchvision's RandomResizedCrop.get_params; the region always lies inside
// the image and is at least one pixel wide and high.
func (t RandomResizedCrop) Params(width, height int, r *rand.Rand) image.Rectangle {
	area := float64(width * height)
	logLo, logHi := math.Log(t.Ratio[0]), math.Log(t.Ratio[1])
	for range 10 {
		target := area * uniform(r, t.Scale[0], t.Scale[1])
		aspect := math.Exp(uniform(r, logLo, logHi))
		w := int(math.RoundToEven(math.Sqrt(target * aspect)))
		h := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if 0 < w && w <= width && 0 < h && h <= height {
			top := r.IntN(height - h + 1)
			left := r.IntN(width - w + 1)
			return image.Rect(left, top, left+w, top+h)
		}
	}
	w, h := width, height
	switch in := float64(width) / float64(height); {
	case in < t.Ratio[0]:
		h = max(int(math.RoundToEven(float64(w)/t.Ratio[0])), 1)
	case in > t.Ratio[1]:
		w = max(int(math.RoundToEven(float64(h)*t.Ratio[1])), 1)
	}
	top, left := (height-h)/2, (width-w)/2
	return image.Rect(left, top, left+w, top+h)
}

func (t RandomResizedCrop) validate() error {
	switch {
	case t.Size <= 0:
		return fmt.Errorf("RandomResizedCrop: size %d must be positive", t.Size)
	case !(0 < t.Scale[0] && t.Scale[0] <= t.Scale[1] && t.Scale[1] <= 1):
		return fmt.Errorf("RandomResizedCrop: scale %v must satisfy 0 < min <= max <= 1", t.Scale)
	case !(0 < t.Ratio[0] && t.Ratio[0] <= t.Ratio[1] && !math.IsInf(t.Ratio[1], 0)):
		return fmt.Errorf("RandomResizedCrop: ratio %v must satisfy 0 < min <= max", t.Ratio)
	}
	return nil
}

// uniform draws from [lo, hi) as torch's Tensor.uniform_.
func uniform(r *rand.Rand, lo, hi float64) float64 {
	return lo + (hi-lo)*r.Float64()
}

// HorizontalFlip mirrors an image left to right with probability P, as
// torchvision's transforms.RandomHorizontalFlip(P). It draws one number
// from r on every call, whatever P.
type HorizontalFlip struct {
	P float64
}

// Apply flips img with probability P.
func (t HorizontalFlip) Apply(img *image.NRGBA, r *rand.Rand) *image.NRGBA {
	if r.Float64() < t.P {
		return flipH(img)
	}
	return img
}

// Random reports true.
func (HorizontalFlip) Random() bool { return true }

func (t HorizontalFlip) validate() error { return checkProbability("HorizontalFlip", t.P) }

// VerticalFlip mirrors an image top to bottom with probability P, as
// torchvision's transforms.RandomVerticalFlip(P). It draws one number from
// r on every call, whatever P.
type VerticalFlip struct {
	P float64
}

// Apply flips img with probability P.
func (t VerticalFlip) Apply(img *image.NRGBA, r *rand.Rand) *image.NRGBA {
	if r.Float64() < t.P {
		return flipV(img)
	}
	return img
}

// Random reports true.
func (VerticalFlip) Random() bool { return true }

func (t VerticalFlip) validate() error { return checkProbability("VerticalFlip", t.P) }

// flipH returns a copy of img mirrored left to right, at the origin.
func flipH(img *image.NRGBA) *image.NRGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		i := img.PixOffset(b.Min.X, b.Min.Y+y)
		src, out := img.Pix[i:i+4*w], dst.Pix[y*dst.Stride:y*dst.Stride+4*w]
		for x := range w {
			binary.NativeEndian.PutUint32(out[4*x:], binary.NativeEndian.Uint32(src[4*(w-1-x):]))
		}
	}
	return dst
}

// flipV returns a copy of img mirrored top to bottom, at the origin.
func flipV(img *image.NRGBA) *image.NRGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		i := img.PixOffset(b.Min.X, b.Max.Y-1-y)
		copy(dst.Pix[y*dst.Stride:y*dst.Stride+4*w], img.Pix[i:i+4*w])
	}
	return dst
}

func checkProbability(name string, p float64) error {
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("%s: probability %v must be in [0, 1]", name, p)
	}
	return nil
}
