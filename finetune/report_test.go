package finetune

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/stretchr/testify/require"
)

// side is the size of TestGradCAMFindsTheEvidence's images: layer4's
// map is 4×4 at 128 pixels.
const side = 128

var white = color.NRGBA{250, 250, 250, 255}

// writeSquare writes a grey noise image of side pixels to path with a
// square of colour c, a quarter of the side, at (x, y).
func writeSquare(t *testing.T, path string, r *rand.Rand, c color.NRGBA, x, y int) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	for py := range side {
		for px := range side {
			v := uint8(100 + r.IntN(20))
			p := color.NRGBA{v, v, v, 255}
			if px >= x && px < x+side/4 && py >= y && py < y+side/4 {
				p = c
			}
			img.SetNRGBA(px, py, p)
		}
	}
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, png.Encode(f, img))
	require.NoError(t, f.Close())
}

// TestGradCAMFindsTheEvidence fits a classifier of noise with a bright
// square (anywhere) against noise alone, in closed form (the head scores
// the difference of the two classes' mean features: a nearest-mean
// classifier), then checks that the Grad-CAM map of "square" peaks in
// the quadrant of layer4's map that holds the square, for squares in each
// quadrant of images it has not seen. The backbone is resnet18 with
// random weights: convolutions keep features where their input is, which
// is what Grad-CAM's maps rest on.
func TestGradCAMFindsTheEvidence(t *testing.T) {
	torch.ManualSeed(1)
	m := must[*Model](t)(NewModel("resnet18", HeadConfig{Pooling: "avg", Init: "random"}, 2, side))
	defer m.Close()
	m.Train(false)
	cfg := Defaults()
	cfg.Data.ImageSize, cfg.Data.Resize = side, side
	meta := Meta{Config: cfg, Classes: []string{"plain", "square"}}
	r := rand.New(rand.NewPCG(5, 6))
	dir := t.TempDir()
	var plain, square []string
	for i := range 8 {
		plain = append(plain, filepath.Join(dir, fmt.Sprintf("plain%d.png", i)))
		writeSquare(t, plain[i], r, color.NRGBA{}, -side, 0)
		square = append(square, filepath.Join(dir, fmt.Sprintf("square%d.png", i)))
		writeSquare(t, square[i], r, white, r.IntN(side*3/4+1), r.IntN(side*3/4+1))
	}
	meanFeatures := func(files []string) []float64 {
		set := &data.Dataset{Classes: meta.Classes}
		for _, f := range files {
			set.Samples = append(set.Samples, data.Sample{Path: f})
		}
		_, loader, err := evalLoader(meta, set)
		require.NoError(t, err)
		defer loader.Close()
		var sum []float64
		for b, err := range loader.Epoch(context.Background(), 0) {
			require.NoError(t, err)
			f := must[*torch.Tensor](t)(m.FrozenFeatures(b.Images))
			v := must[[]float64](t)(f.Float64s())
			k := len(v) / len(b.Indices)
			sum = slices.Grow(sum, k)[:k]
			for i, x := range v {
				sum[i%k] += x / float64(len(files))
			}
			b.Free()
		}
		return sum
	}
	p, q := meanFeatures(plain), meanFeatures(square)
	w := make([]float64, 2*len(p))
	for i := range p {
		w[i], w[len(p)+i] = (p[i]-q[i])/2, (q[i]-p[i])/2
	}
	head := nn.NamedParameters(m.Head)
	require.NoError(t, torch.NoGrad(func() error {
		if err := head[0].Value.Copy_(must[*torch.Tensor](t)(torch.FromSlice(w, 2, int64(len(p))))); err != nil {
			return err
		}
		return head[1].Value.Copy_(must[*torch.Tensor](t)(torch.Zeros([]int64{2})))
	}))

	var files []string
	want := map[string][2]int{}
	for q := range 4 {
		for k := range 2 {
			cx, cy := q%2, q/2
			path := filepath.Join(dir, fmt.Sprintf("q%d-%d.png", q, k))
			writeSquare(t, path, r, white, cx*side/2+side/16+r.IntN(side/8+1), cy*side/2+side/16+r.IntN(side/8+1))
			files = append(files, path)
			want[path] = [2]int{cx, cy}
		}
	}
	ex, err := Explain(context.Background(), m, meta, files)
	require.NoError(t, err)
	require.Len(t, ex, len(files))
	for _, e := range ex {
		require.Equal(t, "square", meta.Classes[e.Class], e.Path)
		require.Equal(t, [2]int{4, 4}, [2]int{e.Heat.W, e.Heat.H})
		best := [2]int{}
		for y := range e.Heat.H {
			for x := range e.Heat.W {
				if e.Heat.At(x, y) > e.Heat.At(best[0], best[1]) {
					best = [2]int{x, y}
				}
			}
		}
		require.Equal(t, want[e.Path], [2]int{best[0] / 2, best[1] / 2}, "%s: map %v", e.Path, e.Heat.Values)
		require.Equal(t, 1.0, e.Heat.At(best[0], best[1]))
		require.Equal(t, image.Pt(side, side), e.View.Bounds().Size())
	}
}

// TestPreviewAugment: the training draws of an image differ from each
// other and follow the seed; the evaluation view is the same every time.
func TestPreviewAugment(t *testing.T) {
	cfg := tinyConfig(t, shapes(t, 4))
	require.True(t, cfg.Augment.Enabled)
	a := must[[]AugmentSample](t)(PreviewAugment(cfg, 6, 1))
	require.Len(t, a, MaxAugmentImages)
	draws := 0
	for _, s := range a {
		draws += len(s.Train)
		require.Equal(t, image.Pt(32, 32), s.Eval.Bounds().Size())
		for i, x := range s.Train {
			require.Equal(t, image.Pt(32, 32), x.Bounds().Size())
			for _, y := range s.Train[:i] {
				require.NotEqual(t, x.Pix, y.Pix, "two draws of %s alike", s.Path)
			}
		}
	}
	require.Equal(t, 6, draws)
	require.Len(t, a[0].Train, 2)
	again := must[[]AugmentSample](t)(PreviewAugment(cfg, 6, 1))
	other := must[[]AugmentSample](t)(PreviewAugment(cfg, 6, 2))
	for i := range a {
		require.Equal(t, a[i].Path, other[i].Path)
		require.Equal(t, a[i].Eval.Pix, other[i].Eval.Pix, "the evaluation view is deterministic")
		require.Equal(t, a[i].Train[0].Pix, again[i].Train[0].Pix, "the draws follow the seed")
		require.NotEqual(t, a[i].Train[0].Pix, other[i].Train[0].Pix)
	}
	_, err := PreviewAugment(cfg, 0, 1)
	require.ErrorContains(t, err, "at least 1")
}
