package plot

import (
	"errors"
	"image"
	"io"
	"path/filepath"

	"golang.org/x/image/draw"

	"github.com/finetune-go/finetune/finetune"
)

// AugmentLayout is the geometry of Augment's grid: a header Top pixels
// high, then a row per image, Tile pixels square (the view scaled up by
// a whole factor to at least 96), Pad apart, with a caption of Caption
// pixels under each row's tiles. The evaluation view is the first column;
// the training draws follow, the gap between them one more Pad.
type AugmentLayout struct{ Top, Tile, Pad, Caption int }

// AugmentGrid returns the layout of Augment's picture of images.
func AugmentGrid(images []finetune.AugmentSample) AugmentLayout {
	side := images[0].Eval.Bounds().Dx()
	scale := (96 + side - 1) / side
	return AugmentLayout{Top: 50, Tile: side * scale, Pad: 10, Caption: 20}
}

// Augment draws what augmentation does to training images as a PNG: a
// row per image, its evaluation view first, then the training pipeline's
// draws.
func Augment(w io.Writer, images []finetune.AugmentSample) error {
	if len(images) == 0 {
		return errors.New("augment: no images")
	}
	l := AugmentGrid(images)
	cols := 0
	for _, s := range images {
		cols = max(cols, 1+len(s.Train))
	}
	width := l.Pad + cols*(l.Tile+l.Pad) + l.Pad
	width = max(width, 40+2*textWidth("augmentation: evaluation view | training draws"))
	height := l.Top + len(images)*(l.Tile+l.Caption+l.Pad)
	c := newCanvas(width, height)
	c.bigText(width/2, 10, "augmentation: evaluation view | training draws", black)
	for i, s := range images {
		y := l.Top + i*(l.Tile+l.Caption+l.Pad)
		x := l.Pad
		for j, v := range append([]*image.NRGBA{s.Eval}, s.Train...) {
			if j == 1 {
				x += l.Pad // the gap between the evaluation view and the draws
			}
			r := image.Rect(x, y, x+l.Tile, y+l.Tile)
			draw.NearestNeighbor.Scale(c.RGBA, r, v, v.Bounds(), draw.Src, nil)
			x += l.Tile + l.Pad
		}
		name := filepath.Join(filepath.Base(filepath.Dir(s.Path)), filepath.Base(s.Path))
		c.text(l.Pad, y+l.Tile+14, clip(name, 60), grey, 0)
	}
	return c.encode(w)
}
