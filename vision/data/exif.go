package data

import (
	"encoding/binary"
	"image"

	"github.com/disintegration/imaging"
)

// exifOrientationTag is the TIFF tag number of the EXIF orientation.
const exifOrientationTag = 0x0112

// jpegOrientation returns the EXIF orientation, 1 to 8, stored in the first
// APP1 Exif segment of the JPEG file b, or 1 when there is none or it cannot
// be read: a damaged EXIF block never fails a decode.
func jpegOrientation(b []byte) int {
	if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
		return 1
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xff {
			return 1
		}
		marker := b[i+1]
		switch {
		case marker == 0xff: // fill byte
			i++
			continue
		case marker == 0x01 || marker >= 0xd0 && marker <= 0xd8: // no length
			i += 2
			continue
		case marker == 0xda || marker == 0xd9: // start of scan or end: metadata is over
			return 1
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return 1
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 1
}

// tiffOrientation reads the orientation tag from IFD0 of the TIFF structure
// t that an Exif segment carries, returning 1 when it is absent or invalid.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(t[2:]) != 42 {
		return 1
	}
	off := int64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > int64(len(t)) {
		return 1
	}
	entries := int(bo.Uint16(t[off:]))
	for k := 0; k < entries; k++ {
		e := int(off) + 2 + 12*k
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) != exifOrientationTag {
			continue
		}
		var v uint32
		switch bo.Uint16(t[e+2:]) { // field type
		case 3: // SHORT
			v = uint32(bo.Uint16(t[e+8:]))
		case 4: // LONG
			v = bo.Uint32(t[e+8:])
		}
		if v >= 1 && v <= 8 {
			return int(v)
		}
		return 1
	}
	return 1
}

// orient applies EXIF orientation o to img, as PIL's ImageOps.exif_transpose,
// so that the result is upright.
func orient(img *image.NRGBA, o int) *image.NRGBA {
	switch o {
	case 2:
		return imaging.FlipH(img)
	case 3:
		return imaging.Rotate180(img)
	case 4:
		return imaging.FlipV(img)
	case 5:
		return imaging.Transpose(img)
	case 6:
		return imaging.Rotate270(img)
	case 7:
		return imaging.Transverse(img)
	case 8:
		return imaging.Rotate90(img)
	}
	return img
}
