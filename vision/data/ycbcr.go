package data

import "image"

// Go's JPEG and WebP decoders return the decoded Y, Cb and Cr planes; the
// functions here turn them into RGB the way libjpeg(-turbo) and libwebp,
// and so PIL, do: chroma is upsampled with their "fancy" triangle filters
// rather than replicated, and the colour conversion uses their fixed-point
// formulas (full-range for JPEG, limited-range BT.601 for WebP).

// plane is a chroma plane of w×h samples.
type plane struct {
	pix     []uint8
	stride  int
	base    int
	w, h    int
	sampleX bool // halved horizontally
	sampleY bool // halved vertically
}

func (p plane) at(x, y int) int { return int(p.pix[p.base+y*p.stride+x]) }

// chromaPlanes returns the Cb and Cr planes of src with their sample
// counts, which follow libjpeg's ceil(size/2) for a halved dimension.
func chromaPlanes(src *image.YCbCr) (cb, cr plane) {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	p := plane{stride: src.CStride, base: src.COffset(src.Rect.Min.X, src.Rect.Min.Y), w: w, h: h}
	switch src.SubsampleRatio {
	case image.YCbCrSubsampleRatio420:
		p.sampleX, p.sampleY = true, true
	case image.YCbCrSubsampleRatio422:
		p.sampleX = true
	case image.YCbCrSubsampleRatio440:
		p.sampleY = true
	}
	if p.sampleX {
		p.w = (w + 1) / 2
	}
	if p.sampleY {
		p.h = (h + 1) / 2
	}
	cb, cr = p, p
	cb.pix, cr.pix = src.Cb, src.Cr
	return cb, cr
}

// jpegFancy upsamples p to w×h as libjpeg-turbo's h2v2_fancy_upsample
// (4:2:0) and h2v1_fancy_upsample (4:2:2); ok is false for other
// subsamplings. libjpeg's special cases for the first and last columns are
// its general formula with the edge sample repeated, which is how they are
// computed here.
func jpegFancy(p plane, w, h int) (out []uint8, ok bool) {
	out = make([]uint8, w*h)
	// sums holds one row of p (weighted for 4:2:0) with the edge samples
	// repeated: sums[i+1] is column i.
	sums := make([]int, p.w+2)
	for y := range h {
		row := out[y*w : (y+1)*w]
		switch {
		case !p.sampleX && !p.sampleY:
			copy(row, p.pix[p.base+y*p.stride:][:w])
			continue
		case p.sampleX && p.sampleY:
			j := y / 2
			far := max(j-1, 0) // output row 2j is nearer to chroma row j-1
			if y%2 == 1 {
				far = min(j+1, p.h-1)
			}
			for i := range p.w {
				sums[i+1] = 3*p.at(i, j) + p.at(i, far)
			}
		case p.sampleX:
			for i := range p.w {
				sums[i+1] = p.at(i, y)
			}
		default:
			return nil, false
		}
		sums[0], sums[p.w+1] = sums[1], sums[p.w]
		for i := range p.w {
			c := 3 * sums[i+1]
			var even, odd int
			if p.sampleY { // 3:1 weights in both directions, /16
				even, odd = (c+sums[i]+8)>>4, (c+sums[i+2]+7)>>4
			} else { // 3:1 horizontally, /4
				even, odd = (c+sums[i]+1)>>2, (c+sums[i+2]+2)>>2
			}
			row[2*i] = uint8(even)
			if 2*i+1 < w {
				row[2*i+1] = uint8(odd)
			}
		}
	}
	return out, true
}

// jpegYCbCrToRGB converts src as libjpeg's ycc_rgb_convert, after
// upsampling chroma with jpegFancy. It returns nil for subsamplings that
// libjpeg upsamples by replication, where Go's conversion is close enough.
func jpegYCbCrToRGB(src *image.YCbCr) *image.NRGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	cbp, crp := chromaPlanes(src)
	cb, ok := jpegFancy(cbp, w, h)
	if !ok {
		return nil
	}
	cr, _ := jpegFancy(crp, w, h)
	const (
		scaleBits = 16
		half      = 1 << (scaleBits - 1)
		crR       = 91881  // FIX(1.40200)
		cbB       = 116130 // FIX(1.77200)
		crG       = 46802  // FIX(0.71414)
		cbG       = 22554  // FIX(0.34414)
	)
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		yrow := src.Y[src.YOffset(src.Rect.Min.X, src.Rect.Min.Y+y):]
		for x := range w {
			lum := int(yrow[x])
			b, r := int(cb[y*w+x])-128, int(cr[y*w+x])-128
			i := dst.PixOffset(x, y)
			dst.Pix[i+0] = clipByte(lum + (crR*r+half)>>scaleBits)
			dst.Pix[i+1] = clipByte(lum + (-cbG*b+half-crG*r)>>scaleBits)
			dst.Pix[i+2] = clipByte(lum + (cbB*b+half)>>scaleBits)
			dst.Pix[i+3] = 0xff
		}
	}
	return dst
}

// webpFancy upsamples a 4:2:0 plane to w×h as libwebp's fancy upsampler
// (UPSAMPLE_FUNC and EmitFancyRGB): each output pixel mixes its nearest
// chroma sample, the two next to it and the diagonal one with weights
// 9:3:3:1, with libwebp's rounding.
func webpFancy(p plane, w, h int) []uint8 {
	out := make([]uint8, w*h)
	for y := range h {
		// near: the chroma row nearer to output row y; far: the other.
		near, far := 0, 0
		switch {
		case y%2 == 1:
			near, far = (y-1)/2, min((y+1)/2, p.h-1)
		case y > 0:
			near, far = y/2, y/2-1
		}
		for x := range w {
			var v int
			same := x / 2 // chroma column of x's nearest sample
			other := same + 1
			if x%2 == 0 {
				other = same - 1
			}
			if x == 0 || other >= p.w {
				v = (3*p.at(same, near) + p.at(same, far) + 2) >> 2
			} else {
				ns, no, fs, fo := p.at(same, near), p.at(other, near), p.at(same, far), p.at(other, far)
				diag := (ns + no + fs + fo + 8 + 2*(no+fs)) >> 3
				v = (diag + ns) >> 1
			}
			out[y*w+x] = uint8(v)
		}
	}
	return out
}

// webpYCbCrToRGB converts a lossy WebP image as libwebp does by default:
// fancy upsampling, then VP8YUVToR/G/B (limited-range BT.601 in 14-bit
// fixed point). Go's YCbCr colour model assumes full-range JPEG values,
// which shifts WebP colours by several levels.
func webpYCbCrToRGB(src *image.YCbCr) *image.NRGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	cbp, crp := chromaPlanes(src)
	if !cbp.sampleX || !cbp.sampleY {
		return nil
	}
	u, v := webpFancy(cbp, w, h), webpFancy(crp, w, h)
	multHi := func(v, c int) int { return (v * c) >> 8 }
	clip := func(v int) uint8 {
		const mask = (256 << 6) - 1
		switch {
		case v&^mask == 0:
			return uint8(v >> 6)
		case v < 0:
			return 0
		}
		return 255
	}
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		yrow := src.Y[src.YOffset(src.Rect.Min.X, src.Rect.Min.Y+y):]
		for x := range w {
			yy := multHi(int(yrow[x]), 19077)
			uu, vv := int(u[y*w+x]), int(v[y*w+x])
			i := dst.PixOffset(x, y)
			dst.Pix[i+0] = clip(yy + multHi(vv, 26149) - 14234)
			dst.Pix[i+1] = clip(yy - multHi(uu, 6419) - multHi(vv, 13320) + 8708)
			dst.Pix[i+2] = clip(yy + multHi(uu, 33050) - 17685)
			dst.Pix[i+3] = 0xff
		}
	}
	return dst
}
