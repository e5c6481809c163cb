package data

import "image"

// rgbImage is a prepared image in a BatchLoader's cache: packed RGB, three
// bytes a pixel, a quarter smaller than *image.NRGBA.
type rgbImage struct {
	pix  []byte
	w, h int
}

// packRGB drops img's alpha channel.
func packRGB(img *image.NRGBA) *rgbImage {
	b := img.Bounds()
	p := &rgbImage{pix: make([]byte, 3*b.Dx()*b.Dy()), w: b.Dx(), h: b.Dy()}
	for y := range p.h {
		i := img.PixOffset(b.Min.X, b.Min.Y+y)
		src, dst := img.Pix[i:i+4*p.w], p.pix[3*p.w*y:3*p.w*(y+1)]
		for x := range p.w {
			s, d := src[4*x:4*x+3:4*x+3], dst[3*x:3*x+3:3*x+3]
			d[0], d[1], d[2] = s[0], s[1], s[2]
		}
	}
	return p
}

// nrgba returns the region r of p, which must lie inside it, as a new
// opaque *image.NRGBA at the origin.
func (p *rgbImage) nrgba(r image.Rectangle) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	for y := range r.Dy() {
		src := p.pix[3*(p.w*(r.Min.Y+y)+r.Min.X) : 3*(p.w*(r.Min.Y+y)+r.Max.X)]
		dst := img.Pix[y*img.Stride : y*img.Stride+4*r.Dx()]
		for x := range r.Dx() {
			s, d := src[3*x:3*x+3:3*x+3], dst[4*x:4*x+4:4*x+4]
			d[0], d[1], d[2], d[3] = s[0], s[1], s[2], 0xff
		}
	}
	return img
}

func (p *rgbImage) pixels() pixels {
	return pixels{pix: p.pix, stride: 3 * p.w, bpp: 3, w: p.w, h: p.h}
}

// pixels is an RGB image, packed or with alpha, on its way to a batch.
type pixels struct {
	pix         []byte // the first pixel's red byte comes first
	stride, bpp int    // bytes from one row, and one pixel, to the next
	w, h        int
}

func nrgbaPixels(img *image.NRGBA) pixels {
	b := img.Bounds()
	return pixels{pix: img.Pix[img.PixOffset(b.Min.X, b.Min.Y):], stride: img.Stride, bpp: 4, w: b.Dx(), h: b.Dy()}
}

// writeCHW writes p to dst in CHW order through the lookup table of
// normLUT, which is what ToCHW and Normalize.Apply compute.
func (p pixels) writeCHW(dst []float32, lut *[3][256]float32) {
	plane := p.w * p.h
	r, g, b := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	for y := range p.h {
		row := p.pix[y*p.stride : y*p.stride+p.bpp*(p.w-1)+3]
		rr, gg, bb := r[y*p.w:(y+1)*p.w], g[y*p.w:(y+1)*p.w], b[y*p.w:(y+1)*p.w]
		for x := range rr {
			s := row[p.bpp*x : p.bpp*x+3 : p.bpp*x+3]
			rr[x], gg[x], bb[x] = lut[0][s[0]], lut[1][s[1]], lut[2][s[2]]
		}
	}
}

// normLUT tabulates ToCHW followed by n.Apply for every byte value and
// channel. It computes them with those very functions, so a batch holds
// the values the per-sample Loader computes, to the bit.
func normLUT(n Normalize) *[3][256]float32 {
	img := image.NewNRGBA(image.Rect(0, 0, 256, 1))
	for v := range 256 {
		img.Pix[4*v], img.Pix[4*v+1], img.Pix[4*v+2], img.Pix[4*v+3] = uint8(v), uint8(v), uint8(v), 0xff
	}
	t := ToCHW(img)
	n.Apply(t)
	var lut [3][256]float32
	for c := range 3 {
		copy(lut[c][:], t.Data[256*c:256*(c+1)])
	}
	return &lut
}
