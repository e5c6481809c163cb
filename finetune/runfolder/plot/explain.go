package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"

	"golang.org/x/image/draw"

	"github.com/finetune-go/finetune/finetune"
)

// Overlay returns ex's image with its Grad-CAM map laid over it: the map
// is scaled up smoothly to the image's size and coloured from
// transparent blue (no evidence) to opaque red (the strongest).
func Overlay(ex finetune.Explanation) *image.NRGBA {
	b := ex.View.Bounds()
	out := image.NewNRGBA(b)
	draw.Copy(out, b.Min, ex.View, b, draw.Src, nil)
	h := ex.Heat
	if h.W == 0 || h.H == 0 {
		return out
	}
	for y := range b.Dy() {
		for x := range b.Dx() {
			v := bilinear(h, (float64(x)+0.5)/float64(b.Dx())*float64(h.W)-0.5, (float64(y)+0.5)/float64(b.Dy())*float64(h.H)-0.5)
			c := jet(v)
			a := 0.15 + 0.45*v
			p := out.NRGBAAt(b.Min.X+x, b.Min.Y+y)
			mix := func(base, over uint8) uint8 { return uint8(math.Round((1-a)*float64(base) + a*float64(over))) }
			out.SetNRGBA(b.Min.X+x, b.Min.Y+y, color.NRGBA{mix(p.R, c.R), mix(p.G, c.G), mix(p.B, c.B), 0xff})
		}
	}
	return out
}

// bilinear samples h at (x, y) in map cells, clamped to its edges.
func bilinear(h finetune.Heatmap, x, y float64) float64 {
	x = math.Max(0, math.Min(float64(h.W-1), x))
	y = math.Max(0, math.Min(float64(h.H-1), y))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, h.W-1), min(y0+1, h.H-1)
	fx, fy := x-float64(x0), y-float64(y0)
	top := h.At(x0, y0)*(1-fx) + h.At(x1, y0)*fx
	bottom := h.At(x0, y1)*(1-fx) + h.At(x1, y1)*fx
	return top*(1-fy) + bottom*fy
}

// jet maps v in [0, 1] from blue through green and yellow to red.
func jet(v float64) color.RGBA {
	v = math.Max(0, math.Min(1, v))
	ch := func(centre float64) uint8 {
		return uint8(math.Round(255 * math.Max(0, math.Min(1, 1.5-math.Abs(4*v-centre)))))
	}
	return color.RGBA{ch(3), ch(2), ch(1), 0xff}
}

// Explanations draws images with their Grad-CAM overlays as a PNG grid,
// each tile captioned with its true class (when known), the predicted
// class, its probability and the loss; title heads the grid.
func Explanations(out io.Writer, classes []string, images []finetune.Explanation, title string) error {
	if len(images) == 0 {
		return errors.New("explanations: no images")
	}
	const tile, capH, pad = 160, 44, 10
	cols := min(4, len(images))
	rows := (len(images) + cols - 1) / cols
	w := max(cols*(tile+pad)+pad, 40+2*textWidth(title))
	h := 50 + rows*(tile+capH+pad)
	c := newCanvas(w, h)
	c.bigText(w/2, 10, title, black)
	for i, ex := range images {
		x0, y0 := pad+(i%cols)*(tile+pad), 50+(i/cols)*(tile+capH+pad)
		over := Overlay(ex)
		r := image.Rect(x0, y0, x0+tile, y0+tile)
		draw.BiLinear.Scale(c.RGBA, r, over, over.Bounds(), draw.Src, nil)
		c.frame(r, grey)
		pred := clip(classes[ex.Predicted], 18)
		line1 := fmt.Sprintf("pred %s %.2f", pred, ex.Probabilities[ex.Predicted])
		col := black
		if ex.Label >= 0 {
			if ex.Label != ex.Predicted {
				col = color.RGBA{0xc0, 0x20, 0x20, 0xff}
			}
			c.text(x0, y0+tile+14, fmt.Sprintf("true %s  loss %.2f", clip(classes[ex.Label], 12), ex.Loss), col, 0)
		}
		c.text(x0, y0+tile+28, line1, col, 0)
	}
	return c.encode(out)
}

// clip shortens s to at most n bytes, marking the cut.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n-1] + "~"
	}
	return s
}
