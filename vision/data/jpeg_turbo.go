package data

// #cgo LDFLAGS: -ljpeg
// #include "jpeg_turbo.h"
import "C"

import (
	"fmt"
	"image"
	"runtime"
)

// DecodeTurbo is the Decoder a Loader uses by default. It reads JPEG files
// with libjpeg-turbo, the library PIL decodes them with, and everything
// else with Decode. Its JPEG pixels equal PIL's (Decode's pure-Go JPEG
// decoder is off by a few levels here and there) and come several times
// faster. Files are recognised by their content, not their name; the EXIF
// orientation is applied and the pixel limit enforced as in Decode, and
// CMYK and grayscale JPEGs are converted to RGB as PIL converts them.
// libjpeg's errors come back as errors naming the file, and a truncated
// JPEG is refused, as PIL refuses it; libjpeg's warnings about recoverable
// corruption are ignored, as PIL ignores them.
func DecodeTurbo(path string, maxPixels int) (*image.NRGBA, error) {
	return DecodeScaled(path, 0, maxPixels)
}

var _ Decoder = DecodeTurbo

// DecodeScaled is DecodeTurbo for an image that is going to be shrunk to
// a shorter side of minSide pixels: it decodes a JPEG at the smallest of
// libjpeg-turbo's DCT scales 1/8, 1/4, 1/2 and 1 whose shorter side is
// still at least minSide, which is several times faster than decoding it
// whole. That is what PIL's Image.draft("RGB", size) does, pixel for pixel;
// the reduced image is close to, but not the same as, a full decode
// resized, since the DCT scaling averages 2×2 to 8×8 blocks where a
// resampling filter would weigh neighbours. A scaled image is
// ceil(width/s)×ceil(height/s) pixels. minSide <= 0 means full size, and
// images in other formats are always decoded whole.
func DecodeScaled(path string, minSide, maxPixels int) (*image.NRGBA, error) {
	buf, err := readImage(path)
	if err != nil {
		return nil, err
	}
	if !isJPEG(buf) {
		return decodeGo(path, buf, maxPixels)
	}
	return decodeTurbo(path, buf, minSide, maxPixels)
}

// isJPEG reports whether buf starts with a JPEG start-of-image marker, the
// test image.Decode uses.
func isJPEG(buf []byte) bool {
	return len(buf) >= 2 && buf[0] == 0xff && buf[1] == 0xd8
}

// scaleDenom returns the largest of 8, 4, 2 whose DCT-scaled shorter side
// of a width×height image, rounded up as libjpeg rounds it, is at least
// minSide, or 1.
func scaleDenom(width, height, minSide int) int {
	short := min(width, height)
	for _, d := range []int{8, 4, 2} {
		if minSide > 0 && (short+d-1)/d >= minSide {
			return d
		}
	}
	return 1
}

// decodeTurbo decodes the JPEG contents buf of the file path with
// libjpeg-turbo at the scale scaleDenom picks for minSide.
func decodeTurbo(path string, buf []byte, minSide, maxPixels int) (*image.NRGBA, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	// libjpeg keeps a pointer to buf from ftj_header to ftj_free, which
	// runs first among the deferred calls.
	var pin runtime.Pinner
	pin.Pin(&buf[0])
	defer pin.Unpin()
	d := C.ftj_new()
	if d == nil {
		return nil, fmt.Errorf("data: decode %s: libjpeg: out of memory", path)
	}
	defer C.ftj_free(d)
	fail := func() error {
		return fmt.Errorf("data: decode %s: libjpeg: %s", path, C.GoString(C.ftj_message(d)))
	}

	var w, h C.int
	if C.ftj_header(d, (*C.uchar)(&buf[0]), C.size_t(len(buf)), &w, &h) != 0 {
		return nil, fail()
	}
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("data: decode %s: empty %dx%d jpeg image", path, w, h)
	}
	if err := checkPixels(path, int(w), int(h), "jpeg", maxPixels); err != nil {
		return nil, err
	}
	var ow, oh, cmyk C.int
	if C.ftj_start(d, C.int(scaleDenom(int(w), int(h), minSide)), &ow, &oh, &cmyk) != 0 {
		return nil, fail()
	}
	img := image.NewNRGBA(image.Rect(0, 0, int(ow), int(oh)))
	if C.ftj_read(d, (*C.uchar)(&img.Pix[0]), C.ptrdiff_t(img.Stride)) != 0 {
		return nil, fail()
	}
	if cmyk != 0 {
		invertedCMYKToRGB(img.Pix)
	}
	return orient(img, jpegOrientation(buf)), nil
}

// invertedCMYKToRGB converts, in place, pixels holding inverted (Adobe)
// CMYK, as libjpeg returns it, to opaque RGB: PIL reads them as "CMYK;I",
// that is 255 minus each byte, and converts with cmykToRGB's formula.
func invertedCMYKToRGB(pix []byte) {
	for i := 0; i+3 < len(pix); i += 4 {
		p := pix[i : i+4 : i+4]
		nk := int(p[3]) // 255 - k
		p[0] = uint8(nk - mulDiv255(255-int(p[0]), nk))
		p[1] = uint8(nk - mulDiv255(255-int(p[1]), nk))
		p[2] = uint8(nk - mulDiv255(255-int(p[2]), nk))
		p[3] = 0xff
	}
}
