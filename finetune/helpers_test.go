package finetune

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeShapes writes a two-class image folder: class "bright" has a light
// square on a dark ground, "dark" the reverse, with noise, n images each.
func writeShapes(t testing.TB, root string, n, size int, seed uint64) {
	t.Helper()
	writeShapesIn(t, root, n, size, seed, func(v int) color.Color { return color.NRGBA{uint8(v), uint8(v / 2), uint8(255 - v), 255} })
}

// writeShapesIn writes writeShapes' images, a pixel of brightness v in
// colour(v).
func writeShapesIn(t testing.TB, root string, n, size int, seed uint64, colour func(v int) color.Color) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	for c, name := range []string{"bright", "dark"} {
		dir := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for i := range n {
			img := image.NewNRGBA(image.Rect(0, 0, size, size))
			x0, y0 := r.IntN(size/2), r.IntN(size/2)
			for y := range size {
				for x := range size {
					in := x >= x0 && x < x0+size/2 && y >= y0 && y < y0+size/2
					v := 40 + r.IntN(40)
					if in == (c == 0) {
						v = 180 + r.IntN(60)
					}
					img.Set(x, y, colour(v))
				}
			}
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%03d.png", i)))
			require.NoError(t, err)
			require.NoError(t, png.Encode(f, img))
			require.NoError(t, f.Close())
		}
	}
}

// tinyConfig is a fast run on writeShapes data: resnet18 from scratch at
// 32 pixels.
func tinyConfig(t testing.TB, train string) Config {
	c := Defaults()
	c.Data.Train = train
	c.Data.ImageSize = 32
	c.Data.Resize = 36
	c.Data.BatchSize = 8
	c.Data.Workers = 2
	c.Model.Arch = "resnet18"
	c.Model.Weights = "none"
	c.Stages = []Stage{{Name: "head", Epochs: 2, Freeze: "all", BackboneLRMult: 0.1}}
	// A head trained from scratch, not started as the probe: the
	// default's rate, fit for a probe's head, would hardly move it.
	c.Train.LR = 1e-3
	c.Output.Dir = filepath.Join(t.TempDir(), "run")
	c.Device = "cpu"
	// From scratch, auto would mean train; the tests pin each choice.
	c.Train.BatchNorm = "frozen"
	// auto would mean bf16 on a CPU with AMX or AVX512-BF16: the tests
	// compute the same on every machine unless they ask for bf16.
	c.Train.Precision = "fp32"
	// A loaded machine may take longer than auto's budget: the tests
	// that want one set it.
	c.Train.MaxTime = "0"
	c.Probe, c.Search = false, "off"
	c.Model.Head.Init = "random"
	return c
}

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(3, 4)) }

// invertPNG replaces a PNG with its negative.
func invertPNG(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		return err
	}
	b := img.Bounds()
	out := image.NewNRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			out.Set(x, y, color.NRGBA{255 - uint8(r>>8), 255 - uint8(g>>8), 255 - uint8(bl>>8), 255})
		}
	}
	w, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(w, out); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
