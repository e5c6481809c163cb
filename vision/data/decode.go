package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // registers GIF with image.Decode
	_ "image/jpeg" // registers JPEG with image.Decode
	_ "image/png"  // registers PNG with image.Decode
	"os"

	"github.com/disintegration/imaging"
	_ "golang.org/x/image/bmp"  // registers BMP with image.Decode
	_ "golang.org/x/image/webp" // registers WebP with image.Decode
)

// DefaultMaxPixels is the pixel count above which Decode refuses an image
// when it is given a non-positive limit. It is PIL's Image.MAX_IMAGE_PIXELS:
// about 9459×9459 pixels, a third of a gigabyte as 8-bit RGBA.
const DefaultMaxPixels = 1 << 30 / 4 / 3

// ErrTooLarge is wrapped by the error Decode returns for an image over the
// pixel limit.
var ErrTooLarge = errors.New("image too large")

// A Decoder reads the image file at path and returns it in RGB form: an
// *image.NRGBA whose bounds start at (0, 0) and whose alpha is 255
// everywhere. It must refuse images of more than maxPixels pixels before
// decoding them, and its errors must name the file. DecodeTurbo, a Loader's
// default, and Decode, in pure Go, are the package's implementations.
type Decoder func(path string, maxPixels int) (*image.NRGBA, error)

var _ Decoder = Decode

// Decode reads a JPEG, PNG, GIF (first frame), BMP or WebP file, recognised
// by its content rather than its name, and returns it as RGB the way
// torchvision's default loader, PIL's Image.open(path).convert("RGB"), does,
// with the EXIF orientation of JPEG files applied as PIL's
// ImageOps.exif_transpose does.
//
// The image dimensions are read first and an image of more than maxPixels
// pixels (DefaultMaxPixels when maxPixels <= 0) is refused before any pixel
// is decoded, which defuses decompression bombs.
//
// Conversions to RGB follow PIL: grayscale is replicated, palettes are
// looked up, CMYK uses PIL's formula, 16-bit samples keep their high byte,
// and alpha is dropped, not composited: a transparent pixel keeps the colour
// stored under it, as in PIL. Where Go's decoders lose information PIL keeps,
// the result differs: Go's GIF decoder stores transparent palette entries as
// black, premultiplied sources lose colour under partial transparency, and
// 16-bit grayscale PNGs, which PIL clips to white, keep their high byte.
// JPEG and lossy WebP colour follows libjpeg-turbo and libwebp (their
// "fancy" chroma upsampling and fixed-point conversions), so lossy WebP
// matches PIL exactly and JPEG within a few levels on a few pixels, the
// difference between Go's IDCT and libjpeg's.
//
// Errors name the file; a decoder panic on malformed input is returned as
// an error.
func Decode(path string, maxPixels int) (*image.NRGBA, error) {
	buf, err := readImage(path)
	if err != nil {
		return nil, err
	}
	return decodeGo(path, buf, maxPixels)
}

// readImage reads an image file, refusing an empty one.
func readImage(path string) ([]byte, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: decode: %w", err)
	}
	if len(buf) == 0 {
		return nil, fmt.Errorf("data: decode %s: empty file", path)
	}
	return buf, nil
}

// decodeGo decodes the contents buf of the file path with Go's decoders,
// as Decode documents.
func decodeGo(path string, buf []byte, maxPixels int) (img *image.NRGBA, err error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("data: decode %s: decoder panic: %v", path, p)
		}
	}()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(buf))
	if err != nil {
		return nil, fmt.Errorf("data: decode %s: %w", path, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("data: decode %s: empty %dx%d %s image", path, cfg.Width, cfg.Height, format)
	}
	if err := checkPixels(path, cfg.Width, cfg.Height, format, maxPixels); err != nil {
		return nil, err
	}
	src, _, err := image.Decode(bytes.NewReader(buf))
	if err != nil {
		return nil, fmt.Errorf("data: decode %s: %w", path, err)
	}
	if src.Bounds().Empty() {
		return nil, fmt.Errorf("data: decode %s: empty %s image", path, format)
	}
	img = toRGB(src, format)
	if format == "jpeg" {
		img = orient(img, jpegOrientation(buf))
	}
	return img, nil
}

// checkPixels refuses a width×height image of more than maxPixels pixels.
func checkPixels(path string, width, height int, format string, maxPixels int) error {
	if int64(width)*int64(height) > int64(maxPixels) {
		return fmt.Errorf("data: decode %s: %dx%d %s image has more than %d pixels: %w",
			path, width, height, format, maxPixels, ErrTooLarge)
	}
	return nil
}

// ToRGB converts an image already in memory to what the pipelines take:
// an opaque *image.NRGBA at the origin, alpha dropped. Its source format
// is unknown, so YCbCr converts with Go's arithmetic, not the PIL-exact
// conversion Decode uses for a JPEG or WebP file (a level apart on some
// pixels).
func ToRGB(img image.Image) *image.NRGBA { return toRGB(img, "") }

// toRGB converts any decoded image of the given format to an opaque NRGBA
// image at the origin.
func toRGB(src image.Image, format string) *image.NRGBA {
	if s, ok := src.(*image.NYCbCrA); ok {
		src = &s.YCbCr // drop alpha without premultiplying
	}
	var dst *image.NRGBA
	switch s := src.(type) {
	case *image.CMYK:
		dst = cmykToRGB(s)
	case *image.YCbCr:
		switch format {
		case "jpeg":
			dst = jpegYCbCrToRGB(s)
		case "webp":
			dst = webpYCbCrToRGB(s)
		}
	}
	if dst == nil {
		// imaging.Clone reads NRGBA, NRGBA64, Gray, Gray16, RGBA64, YCbCr
		// and Paletted directly (16-bit samples by their high byte) and
		// un-premultiplies RGBA.
		dst = imaging.Clone(src)
	}
	for i := 3; i < len(dst.Pix); i += 4 {
		dst.Pix[i] = 0xff
	}
	return dst
}

// cmykToRGB converts with PIL's cmyk2rgb: each channel is
// (255-k) - c*(255-k)/255, rounded. Go's color.CMYKToRGB rounds differently.
func cmykToRGB(src *image.CMYK) *image.NRGBA {
	b := src.Bounds()
	dst := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := src.CMYKAt(x, y)
			nk := 255 - int(c.K)
			i := dst.PixOffset(x-b.Min.X, y-b.Min.Y)
			dst.Pix[i+0] = uint8(nk - mulDiv255(int(c.C), nk))
			dst.Pix[i+1] = uint8(nk - mulDiv255(int(c.M), nk))
			dst.Pix[i+2] = uint8(nk - mulDiv255(int(c.Y), nk))
			dst.Pix[i+3] = 0xff
		}
	}
	return dst
}

// mulDiv255 returns a*b/255 rounded, as PIL's MULDIV255 macro.
func mulDiv255(a, b int) int {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}
