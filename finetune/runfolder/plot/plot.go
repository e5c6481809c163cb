// Package plot draws a run's reports as PNG images: the learning curves
// and the confusion matrix, with no dependency beyond the standard
// library's image packages and a bitmap font.
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
	"github.com/finetune-go/finetune/internal/plural"
)

// Curves draws a run's learning curves to w as a PNG: training and
// validation loss on the left, accuracy on the right with the gap between
// them shaded (red where training is ahead: overfitting), the boundaries
// between stages dashed and the best epoch marked. history is one run's
// epochs in order (one fold's under cross-validation), as metrics.jsonl
// holds them.
func Curves(w io.Writer, history []finetune.EpochMetrics) error {
	if len(history) == 0 {
		return errors.New("curves: no epochs to plot")
	}
	const width, height = 1100, 480
	c := newCanvas(width, height)
	best := 0
	for i, em := range history {
		if em.Best {
			best = i + 1
		}
	}
	title := plural.Count(len(history), "epoch")
	if best > 0 {
		b := history[best-1]
		title += fmt.Sprintf(", best: epoch %d (%s %d), val accuracy %.3f", best, b.Stage, b.Epoch, b.ValAccuracy)
	}
	c.bigText(width/2, 10, title, black)
	var trainLoss, valLoss, trainAcc, valAcc []float64
	for _, em := range history {
		trainLoss = append(trainLoss, em.TrainLoss)
		valLoss = append(valLoss, em.ValLoss)
		trainAcc = append(trainAcc, em.TrainAccuracy)
		valAcc = append(valAcc, em.ValAccuracy)
	}
	lossMax := 0.0
	for _, v := range append(append([]float64(nil), trainLoss...), valLoss...) {
		if !math.IsInf(v, 0) && !math.IsNaN(v) {
			lossMax = math.Max(lossMax, v)
		}
	}
	accMin := 1.0
	for _, v := range append(append([]float64(nil), trainAcc...), valAcc...) {
		accMin = math.Min(accMin, v)
	}
	accLo := math.Max(0, math.Min(math.Floor((accMin-0.02)*10)/10, 0.9))
	p := plotPanel{history: history, best: best}
	// The training loss is the steps' own, under augmentation; the
	// accuracies are both measured in evaluation mode, so their gap
	// compares like with like (EpochMetrics.TrainAccuracy).
	p.area, p.title, p.lo, p.hi = image.Rect(70, 70, 520, 400), "loss (train: the steps', under augmentation)", 0, math.Max(lossMax*1.08, 1e-3)
	p.draw(c, trainLoss, valLoss, false)
	p.area, p.title, p.lo, p.hi = image.Rect(620, 70, 1070, 400), "accuracy (both in evaluation mode)", accLo, 1
	p.draw(c, trainAcc, valAcc, true)
	legend(c, 70, 455, []legendItem{
		{"train", trainBlue, false}, {"validation", valOrange, false},
		{"gap: train ahead of validation", gapRed, true}, {"validation ahead", gapGreen, true},
		{"best epoch", bestGreen, false}, {"stage boundary", grey, false},
	})
	return c.encode(w)
}

// plotPanel is one chart of WriteCurves: epochs 1..n across, [lo, hi] up.
type plotPanel struct {
	area    image.Rectangle
	title   string
	lo, hi  float64
	history []finetune.EpochMetrics
	best    int
}

func (p plotPanel) x(epoch float64) float64 {
	n := float64(len(p.history))
	return float64(p.area.Min.X) + (epoch-0.5)/n*float64(p.area.Dx())
}

func (p plotPanel) y(v float64) float64 {
	v = math.Max(p.lo, math.Min(p.hi, v))
	return float64(p.area.Max.Y) - (v-p.lo)/(p.hi-p.lo)*float64(p.area.Dy())
}

func (p plotPanel) draw(c *canvas, train, val []float64, shade bool) {
	a := p.area
	c.text(a.Min.X+a.Dx()/2, a.Min.Y-10, p.title, black, 0.5)
	step := niceStep(p.hi-p.lo, 5)
	for v := math.Ceil(p.lo/step) * step; v <= p.hi+1e-9; v += step {
		y := int(p.y(v))
		c.fill(image.Rect(a.Min.X, y, a.Max.X, y+1), gridGrey)
		c.text(a.Min.X-6, y+4, strconv.FormatFloat(v, 'f', decimals(step), 64), black, 1)
	}
	n := len(p.history)
	xstep := int(math.Max(1, niceStep(float64(n), 10)))
	for e := 1; e <= n; e++ {
		if e%xstep == 0 || (e == 1 && xstep > 2) {
			x := int(p.x(float64(e)))
			c.fill(image.Rect(x, a.Max.Y, x+1, a.Max.Y+4), black)
			c.text(x, a.Max.Y+17, strconv.Itoa(e), black, 0.5)
		}
	}
	c.text(a.Min.X+a.Dx()/2, a.Max.Y+34, "epoch", black, 0.5)
	if shade {
		p.shadeGap(c, train, val)
	}
	for i, em := range p.history {
		if i == 0 || em.Stage != p.history[i-1].Stage {
			x := int(p.x(float64(i) + 0.5))
			if i > 0 {
				c.dashedV(x, a.Min.Y, a.Max.Y, grey)
			}
			c.text(x+4, a.Min.Y+14, em.Stage, grey, 0)
		}
	}
	if p.best > 0 {
		x := p.x(float64(p.best))
		c.fill(image.Rect(int(x), a.Min.Y, int(x)+2, a.Max.Y), color.NRGBA{0x2c, 0xa0, 0x2c, 0x90})
		y := p.y(val[p.best-1])
		c.fill(image.Rect(int(x)-5, int(y)-5, int(x)+6, int(y)+6), bestGreen)
	}
	for _, s := range []struct {
		ys  []float64
		col color.RGBA
	}{{train, trainBlue}, {val, valOrange}} {
		for i, v := range s.ys {
			x, y := p.x(float64(i+1)), p.y(v)
			if i > 0 {
				c.line(p.x(float64(i)), p.y(s.ys[i-1]), x, y, s.col, 2)
			}
			if n <= 60 {
				c.fill(image.Rect(int(x)-2, int(y)-2, int(x)+3, int(y)+3), s.col)
			}
		}
	}
	c.frame(a, black)
}

// shadeGap fills the band between the training and validation curves,
// column by column.
func (p plotPanel) shadeGap(c *canvas, train, val []float64) {
	n := len(train)
	x0, x1 := int(p.x(1)), int(p.x(float64(n)))
	for x := x0; x <= x1; x++ {
		e := 1.0
		if x1 > x0 {
			e = 1 + float64(x-x0)/float64(x1-x0)*float64(n-1)
		}
		i := min(int(e)-1, n-1)
		f := e - float64(i+1)
		tv, vv := train[i], val[i]
		if i+1 < n {
			tv += f * (train[i+1] - train[i])
			vv += f * (val[i+1] - val[i])
		}
		col := gapRed
		if vv > tv {
			col = gapGreen
		}
		yt, yv := int(p.y(tv)), int(p.y(vv))
		c.fill(image.Rect(x, min(yt, yv), x+1, max(yt, yv)+1), col)
	}
}

// decimals is the number of decimals that tick labels step apart need.
func decimals(step float64) int {
	return max(0, int(math.Ceil(-math.Log10(step)-1e-9)))
}

type legendItem struct {
	name string
	col  color.Color
	area bool
}

func legend(c *canvas, x, y int, items []legendItem) {
	for _, it := range items {
		if it.area {
			c.fill(image.Rect(x, y-10, x+18, y+2), it.col)
		} else {
			c.fill(image.Rect(x, y-5, x+18, y-3), it.col)
		}
		c.text(x+24, y, it.name, black, 0)
		x += 24 + textWidth(it.name) + 24
	}
}

// Confusion draws a confusion matrix to out as a PNG heat map: rows are
// the true classes, columns the predicted ones, each cell holds its count
// and is coloured by the fraction of its row (the true class's recall on
// the diagonal).
func Confusion(out io.Writer, conf *finetune.Confusion, title string) error {
	k := len(conf.Classes)
	if k == 0 {
		return errors.New("confusion: no classes")
	}
	cell := max(16, min(64, 560/k))
	names := make([]string, k)
	nameW := 0
	for i, n := range conf.Classes {
		n = clip(n, 24)
		names[i] = n
		nameW = max(nameW, textWidth(n))
	}
	origin := image.Pt(40+nameW+8, 50+20+nameW+8)
	grid := image.Rectangle{Min: origin, Max: origin.Add(image.Pt(k*cell, k*cell))}
	w := max(grid.Max.X+100, 40+textWidth(title)*2+40)
	h := grid.Max.Y + 40
	c := newCanvas(w, h)
	c.bigText(w/2, 10, title, black)
	c.text(grid.Min.X+grid.Dx()/2, 66, "predicted", black, 0.5)
	c.textUp(14, grid.Min.Y+grid.Dy()/2+textWidth("true")/2, "true", black)
	for i, row := range conf.Counts {
		var total int64
		for _, v := range row {
			total += v
		}
		for j, v := range row {
			f := 0.0
			if total > 0 {
				f = float64(v) / float64(total)
			}
			r := image.Rect(grid.Min.X+j*cell, grid.Min.Y+i*cell, grid.Min.X+(j+1)*cell, grid.Min.Y+(i+1)*cell)
			c.fill(r, blues(f))
			s := strconv.FormatInt(v, 10)
			if cell >= 20 && textWidth(s) <= cell-4 {
				col := black
				if f > 0.5 {
					col = color.RGBA{0xff, 0xff, 0xff, 0xff}
				}
				c.text(r.Min.X+cell/2, r.Min.Y+cell/2+5, s, col, 0.5)
			}
		}
		c.text(grid.Min.X-8, grid.Min.Y+i*cell+cell/2+5, names[i], black, 1)
		c.textUp(grid.Min.X+i*cell+cell/2-6, grid.Min.Y-8, names[i], black)
	}
	c.frame(grid, black)
	bar := image.Rect(grid.Max.X+30, grid.Min.Y, grid.Max.X+44, grid.Max.Y)
	for y := bar.Min.Y; y < bar.Max.Y; y++ {
		c.fill(image.Rect(bar.Min.X, y, bar.Max.X, y+1), blues(1-float64(y-bar.Min.Y)/float64(bar.Dy())))
	}
	c.frame(bar, black)
	c.text(bar.Max.X+4, bar.Min.Y+10, "1", black, 0)
	c.text(bar.Max.X+4, bar.Max.Y, "0", black, 0)
	c.text(grid.Min.X, grid.Max.Y+24, "colour: fraction of the true class", grey, 0)
	return c.encode(out)
}

// blues maps f in [0, 1] to a white-to-dark-blue scale.
func blues(f float64) color.RGBA {
	stops := []color.RGBA{{0xf7, 0xfb, 0xff, 0xff}, {0xc6, 0xdb, 0xef, 0xff}, {0x6b, 0xae, 0xd6, 0xff},
		{0x21, 0x71, 0xb5, 0xff}, {0x08, 0x30, 0x6b, 0xff}}
	f = math.Max(0, math.Min(1, f)) * float64(len(stops)-1)
	i := min(int(f), len(stops)-2)
	t := f - float64(i)
	mix := func(a, b uint8) uint8 { return uint8(math.Round(float64(a) + t*(float64(b)-float64(a)))) }
	a, b := stops[i], stops[i+1]
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 0xff}
}
