package plot

import (
	"image"
	"image/color"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// canvas is a white RGBA image with the few drawing operations the
// report plots need, text in the 7×13 bitmap font.
type canvas struct{ *image.RGBA }

var (
	black     = color.RGBA{0x22, 0x22, 0x22, 0xff}
	grey      = color.RGBA{0x88, 0x88, 0x88, 0xff}
	gridGrey  = color.RGBA{0xe4, 0xe4, 0xe4, 0xff}
	trainBlue = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	valOrange = color.RGBA{0xff, 0x7f, 0x0e, 0xff}
	bestGreen = color.RGBA{0x2c, 0xa0, 0x2c, 0xff}
	gapRed    = color.NRGBA{0xd6, 0x27, 0x28, 0x50}
	gapGreen  = color.NRGBA{0x2c, 0xa0, 0x2c, 0x40}
)

// face is the font of every label: 7 pixels wide, 13 high.
var face = basicfont.Face7x13

func newCanvas(w, h int) *canvas {
	c := &canvas{image.NewRGBA(image.Rect(0, 0, w, h))}
	draw.Draw(c.RGBA, c.Bounds(), image.White, image.Point{}, draw.Src)
	return c
}

// fill paints r with col, blending when col is translucent.
func (c *canvas) fill(r image.Rectangle, col color.Color) {
	draw.Draw(c.RGBA, r, image.NewUniform(col), image.Point{}, draw.Over)
}

// line draws a segment width pixels thick.
func (c *canvas) line(x0, y0, x1, y1 float64, col color.Color, width int) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	for i := 0; i <= n; i++ {
		t := float64(i) / float64(n)
		x := int(math.Round(x0 + t*(x1-x0)))
		y := int(math.Round(y0 + t*(y1-y0)))
		c.fill(image.Rect(x-width/2, y-width/2, x-width/2+width, y-width/2+width), col)
	}
}

// dashedV draws a vertical dashed line at x from y0 to y1.
func (c *canvas) dashedV(x, y0, y1 int, col color.Color) {
	for y := y0; y < y1; y += 8 {
		c.fill(image.Rect(x, y, x+1, min(y+4, y1)), col)
	}
}

// textWidth is the width of s in pixels.
func textWidth(s string) int { return font.MeasureString(face, s).Round() }

// text draws s with its baseline at y; align is 0 to start at x, 0.5 to
// centre on x and 1 to end at x.
func (c *canvas) text(x, y int, s string, col color.Color, align float64) {
	d := font.Drawer{Dst: c.RGBA, Src: image.NewUniform(col), Face: face,
		Dot: fixed.P(x-int(align*float64(textWidth(s))), y)}
	d.DrawString(s)
}

// label renders s on a transparent image of its own size.
func label(s string, col color.Color) *image.RGBA {
	m := face.Metrics()
	img := image.NewRGBA(image.Rect(0, 0, max(textWidth(s), 1), m.Height.Ceil()))
	d := font.Drawer{Dst: img, Src: image.NewUniform(col), Face: face, Dot: fixed.P(0, m.Ascent.Ceil())}
	d.DrawString(s)
	return img
}

// bigText draws s at twice the font's size, centred on x, its top at y.
func (c *canvas) bigText(x, y int, s string, col color.Color) {
	l := label(s, col)
	w, h := 2*l.Bounds().Dx(), 2*l.Bounds().Dy()
	draw.NearestNeighbor.Scale(c.RGBA, image.Rect(x-w/2, y, x-w/2+w, y+h), l, l.Bounds(), draw.Over, nil)
}

// textUp draws s rotated a quarter turn anticlockwise, reading upwards,
// with its first character's left edge at (x, y) and the text above y.
func (c *canvas) textUp(x, y int, s string, col color.Color) {
	l := label(s, col)
	w, h := l.Bounds().Dx(), l.Bounds().Dy()
	for ly := range h {
		for lx := range w {
			if p := l.RGBAAt(lx, ly); p.A > 0 {
				c.fill(image.Rect(x+ly, y-lx, x+ly+1, y-lx+1), p)
			}
		}
	}
}

// frame draws the outline of r.
func (c *canvas) frame(r image.Rectangle, col color.Color) {
	c.fill(image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+1), col)
	c.fill(image.Rect(r.Min.X, r.Max.Y-1, r.Max.X, r.Max.Y), col)
	c.fill(image.Rect(r.Min.X, r.Min.Y, r.Min.X+1, r.Max.Y), col)
	c.fill(image.Rect(r.Max.X-1, r.Min.Y, r.Max.X, r.Max.Y), col)
}

// encode writes c to w as a PNG.
func (c *canvas) encode(w io.Writer) error {
	return png.Encode(w, c.RGBA)
}

// niceStep returns a round step (1, 2 or 5 times a power of ten) that
// splits span into about n intervals.
func niceStep(span float64, n int) float64 {
	if !(span > 0) {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}
