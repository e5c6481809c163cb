package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"strconv"

	"github.com/finetune-go/finetune/finetune"
)

// stepGrey draws the loss of each step, behind the smoothed curve.
var stepGrey = color.RGBA{0xc8, 0xc8, 0xc8, 0xff}

// LRFinder draws a learning-rate range test to w as a PNG: each step's
// loss (light) and the smoothed loss (bold) against the rate on a
// logarithmic axis, the suggested rate marked.
func LRFinder(w io.Writer, f *finetune.LRFinding) error {
	if len(f.LRs) < 2 {
		return errors.New("lr finder: fewer than two steps to plot")
	}
	const width, height = 900, 520
	c := newCanvas(width, height)
	c.bigText(width/2, 10, fmt.Sprintf("learning-rate range test (stage %s): suggested %.2g", f.Stage, f.Suggested), black)
	area := image.Rect(80, 60, width-30, height-80)
	lo, hi := math.Log10(f.LRs[0]), math.Log10(f.LRs[len(f.LRs)-1])
	// The loss axis spans the smoothed curve, with room above its start:
	// a diverged tail is cut at the top.
	bottom := math.Inf(1)
	for _, v := range f.Smoothed {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			bottom = math.Min(bottom, v)
		}
	}
	top := math.Max(f.Smoothed[0]*1.3, bottom*1.5)
	bottom = math.Max(0, bottom-0.1*(top-bottom))
	if !(top > bottom) {
		top = bottom + 1
	}
	x := func(lr float64) float64 {
		return float64(area.Min.X) + (math.Log10(lr)-lo)/(hi-lo)*float64(area.Dx())
	}
	y := func(v float64) float64 {
		if math.IsNaN(v) {
			v = top
		}
		v = math.Max(bottom, math.Min(top, v))
		return float64(area.Max.Y) - (v-bottom)/(top-bottom)*float64(area.Dy())
	}
	step := niceStep(top-bottom, 5)
	for v := math.Ceil(bottom/step) * step; v <= top+1e-9; v += step {
		py := int(y(v))
		c.fill(image.Rect(area.Min.X, py, area.Max.X, py+1), gridGrey)
		c.text(area.Min.X-6, py+4, strconv.FormatFloat(v, 'f', decimals(step), 64), black, 1)
	}
	for e := math.Ceil(lo); e <= hi+1e-9; e++ {
		px := int(x(math.Pow(10, e)))
		c.fill(image.Rect(px, area.Min.Y, px+1, area.Max.Y), gridGrey)
		c.text(px, area.Max.Y+17, fmt.Sprintf("1e%+d", int(e)), black, 0.5)
	}
	c.text(area.Min.X+area.Dx()/2, area.Max.Y+36, "learning rate (log scale)", black, 0.5)
	c.textUp(20, area.Min.Y+area.Dy()/2+textWidth("loss")/2, "loss", black)
	for i := 1; i < len(f.LRs); i++ {
		c.line(x(f.LRs[i-1]), y(f.Losses[i-1]), x(f.LRs[i]), y(f.Losses[i]), stepGrey, 1)
	}
	for i := 1; i < len(f.LRs); i++ {
		c.line(x(f.LRs[i-1]), y(f.Smoothed[i-1]), x(f.LRs[i]), y(f.Smoothed[i]), trainBlue, 2)
	}
	sx := int(x(f.Suggested))
	c.fill(image.Rect(sx, area.Min.Y, sx+2, area.Max.Y), bestGreen)
	c.text(sx+6, area.Min.Y+16, fmt.Sprintf("suggested %.2g", f.Suggested), bestGreen, 0)
	c.frame(area, black)
	legend(c, area.Min.X, height-18, []legendItem{{"loss of each step", stepGrey, false},
		{"smoothed loss", trainBlue, false}, {"suggested: steepest descent", bestGreen, false}})
	return c.encode(w)
}
