package finetune

import (
	"context"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/data"
)

// foldGray returns conv1's weight w (out×3×k×k) for gray images
// normalised with from instead of with mean m and std s on every channel:
// the convolution gives the same output, zero padding included. For a
// gray pixel g, w sees v = (g-m)/s on each channel, and the folded
// weight w' sees u_c = (g-from.Mean[c])/from.Std[c]. With a_c =
// w'_c/from.Std[c] and S = Σ_c w_c, Σ_c w'_c·u_c = Σ_c w_c·v for every g
// when Σ_c a_c = S/s and Σ_c a_c·from.Mean[c] = S·m/s; both sides are 0
// on padding (u = v = 0). Two equations for three channels: a takes the
// least-norm solution, a_c = (S/s)·(λ0 + λ1·from.Mean[c]). With colour
// images no such weight exists: that is why users could only fold
// gray-scale normalisation into the weights.
func foldGray(t *testing.T, w *torch.Tensor, from data.Normalize, m, s float64) *torch.Tensor {
	var mu, sigma [3]float64
	for c := range 3 {
		mu[c], sigma[c] = float64(from.Mean[c]), float64(from.Std[c])
	}
	// (A·Aᵀ)·λ = (1, m) with A = [1 1 1; μ0 μ1 μ2].
	a11, a12, a22 := 3.0, mu[0]+mu[1]+mu[2], mu[0]*mu[0]+mu[1]*mu[1]+mu[2]*mu[2]
	det := a11*a22 - a12*a12
	l0, l1 := (a22-a12*m)/det, (a11*m-a12)/det
	shape := w.Shape()
	vals := must[[]float64](t)(w.Float64s())
	plane := int(shape[2] * shape[3])
	out := make([]float32, len(vals))
	for o := range int(shape[0]) {
		for i := range plane {
			sum := 0.0
			for c := range 3 {
				sum += vals[(o*3+c)*plane+i]
			}
			for c := range 3 {
				out[(o*3+c)*plane+i] = float32(sum / s * (l0 + l1*mu[c]) * sigma[c])
			}
		}
	}
	return must[*torch.Tensor](t)(torch.FromSlice(out, shape...))
}

// TestNormalizationFoldedIntoWeights: a run with data.mean 0.5 and
// data.std 0.25 on gray images reaches the accuracy of the same run
// with that normalisation folded into conv1 of the weights, normalised
// with ImageNet's (what a bare weights file gets). The two backbones
// compute the same function, up to float32 rounding (the fold's
// coefficients are a few times the weights), and the stem is frozen, so
// the runs see the same features and train the same head: the accuracy
// is equal, or differs by an image whose two classes were equally
// likely. Their models' predictions, through each run's own Meta (what
// a checkpoint records and PredictImage uses), agree too, while the
// first model with ImageNet's normalisation disagrees: the test fails if
// data.mean or data.std were ignored anywhere on the way.
func TestNormalizationFoldedIntoWeights(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	root := t.TempDir()
	// Gray: R = G = B.
	writeShapesIn(t, root, 20, 32, 11, func(v int) color.Color { return color.Gray{Y: uint8(v)} })
	torch.ManualSeed(5)
	m, err := NewModel("resnet18", Defaults().Model.Head, 2, 32)
	require.NoError(t, err)
	defer nn.Free(m)
	dir := t.TempDir()
	plain, folded := filepath.Join(dir, "plain.safetensors"), filepath.Join(dir, "folded.safetensors")
	sd := nn.StateDict(m.Backbone)
	require.NoError(t, nn.WriteSafetensors(plain, sd, nil))
	for i, e := range sd {
		if e.Name == "conv1.weight" {
			sd[i].Value = foldGray(t, e.Value, data.ImageNet, 0.5, 0.25)
		}
	}
	require.NoError(t, nn.WriteSafetensors(folded, sd, nil))

	run := func(weights string, mean, std []float64) *Result {
		cfg := tinyConfig(t, root)
		cfg.Model.Weights = weights
		cfg.Data.Mean, cfg.Data.Std = mean, std
		cfg.Stages = []Stage{{Name: "head", Epochs: 3, Freeze: "all"}}
		res, err := Train(context.Background(), cfg, Options{})
		require.NoError(t, err)
		return res
	}
	a := run(plain, []float64{0.5, 0.5, 0.5}, []float64{0.25, 0.25, 0.25})
	defer nn.Free(a.Model)
	b := run(folded, nil, nil)
	defer nn.Free(b.Model)
	gray := data.Normalize{Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.25, 0.25}}
	require.Equal(t, gray, a.Plan.Normalize)
	require.Equal(t, gray, a.Meta.Normalize)
	require.Equal(t, data.ImageNet, b.Meta.Normalize)
	require.Contains(t, b.Plan.Decisions, Decision{Key: "data.mean", Value: "0.485,0.456,0.406",
		Reason: "ImageNet's: " + folded + " records no \"mean\" and \"std\" in its metadata; set data.mean and data.std if they were trained with others"})

	images := a.Val.Confusion.Total()
	require.Equal(t, images, b.Val.Confusion.Total())
	require.LessOrEqual(t, math.Abs(a.Val.Accuracy-b.Val.Accuracy)*float64(images), 1.0)
	require.InDelta(t, a.Val.Loss, b.Val.Loss, 1e-3)

	files, err := ImageFiles([]string{root})
	require.NoError(t, err)
	imageNet := a.Meta
	imageNet.Normalize = data.ImageNet
	differs := 0.0
	for _, path := range files[:8] {
		f, err := os.Open(path)
		require.NoError(t, err)
		img, err := png.Decode(f)
		require.NoError(t, f.Close())
		require.NoError(t, err)
		pa := must[Prediction](t)(PredictImage(a.Model, a.Meta, img, false))
		pb := must[Prediction](t)(PredictImage(b.Model, b.Meta, img, false))
		require.InDeltaSlice(t, pa.Probabilities, pb.Probabilities, 1e-3, path)
		wrong := must[Prediction](t)(PredictImage(a.Model, imageNet, img, false))
		differs = max(differs, math.Abs(wrong.Probabilities[0]-pa.Probabilities[0]))
	}
	require.Greater(t, differs, 1e-2, "the normalisation makes no difference: the test proves nothing")
}

// TestEvalResizeFollowsImages: with data.resize 0, images at or below
// data.image_size are resized to it, nothing cropped away; larger ones
// get torchvision's 8/7 (or keep their size when between the two); the
// plan records the choice, and a checkpoint's Meta evaluates with it.
func TestEvalResizeFollowsImages(t *testing.T) {
	for _, c := range []struct {
		size, resize, want int
		why                string
	}{
		{24, 0, 32, "median shorter side is 24 pixels (10 training images read), at or below data.image_size 32: resized to the crop"},
		{32, 0, 32, "at or below data.image_size 32"},
		{34, 0, 34, "between data.image_size 32 and its 8/7"},
		{80, 0, 36, "8/7 of data.image_size 32, as torchvision's 256 for 224"},
		{24, 40, 40, ""},
	} {
		root := t.TempDir()
		writeShapes(t, root, 6, c.size, 1)
		cfg := tinyConfig(t, root)
		cfg.Data.Resize = c.resize
		d, err := OpenData(cfg)
		require.NoError(t, err)
		require.Equal(t, c.want, d.EvalResize, "images of %d pixels", c.size)
		require.Contains(t, d.resizeWhy, c.why)
	}
	root := t.TempDir()
	writeShapes(t, root, 6, 24, 1)
	cfg := tinyConfig(t, root)
	cfg.Data.Resize = 0
	cfg.Stages[0].Epochs = 1
	res, err := Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	defer nn.Free(res.Model)
	require.Equal(t, 32, res.Plan.EvalResize)
	require.Equal(t, 32, res.Meta.evalResize())
	require.Equal(t, 36, cfg.EvalResize(), "the fallback a plan replaces")
	var keys []string
	for _, d := range res.Plan.Decisions {
		keys = append(keys, d.Key)
	}
	require.Contains(t, keys, "data.resize")
}

// TestWeightsNormalization: the weights' own normalisation is ImageNet's
// for torchvision's weights and files that record none (saying so), and
// what a safetensors file records in its metadata; bad records are
// errors naming the file and the key.
func TestWeightsNormalization(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	dir := t.TempDir()
	w := []nn.Named[*torch.Tensor]{{Name: "x", Value: must[*torch.Tensor](t)(torch.FromSlice([]float32{1}))}}
	file := func(name string, md map[string]string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, nn.WriteSafetensors(path, w, md))
		return path
	}
	gray := data.Normalize{Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.25, 0.25}}
	for _, c := range []struct {
		spec string
		want data.Normalize
		why  string
	}{
		{"imagenet", data.ImageNet, "torchvision's published weights were trained with them"},
		{"none", data.ImageNet, "no pretrained weights"},
		{filepath.Join(dir, "w.pth"), data.ImageNet, "records no normalisation (a .pth file cannot); set data.mean and data.std"},
		{file("bare.safetensors", nil), data.ImageNet, "records no \"mean\" and \"std\" in its metadata"},
		{file("gray.safetensors", map[string]string{"mean": "[0.5, 0.5, 0.5]", "std": "0.25,0.25,0.25"}), gray, "(metadata \"mean\" and \"std\")"},
		{file("run.safetensors", map[string]string{"normalize": `{"Mean":[0.5,0.5,0.5],"Std":[0.25,0.25,0.25]}`}), gray, "(metadata \"normalize\")"},
	} {
		got, why, err := weightsNormalization(c.spec)
		require.NoError(t, err, c.spec)
		require.Equal(t, c.want, got, c.spec)
		require.Contains(t, why, c.why, c.spec)
	}
	for _, c := range []struct {
		md   map[string]string
		want string
	}{
		{map[string]string{"mean": "0.5,0.5,0.5"}, `metadata "std": missing beside "mean"`},
		{map[string]string{"mean": "0.5,0.5", "std": "1,1,1"}, `metadata "mean": mean: want 3 values`},
		{map[string]string{"mean": "0.5,0.5,0.5", "std": "1,0,1"}, `metadata "std": std: value 2 is 0: want a positive number`},
		{map[string]string{"mean": "a,b,c", "std": "1,1,1"}, `metadata "mean": "a" is not a number`},
		{map[string]string{"normalize": `{"Mean":[0,0,0],"Std":[0,1,1]}`}, `metadata "normalize": channel 1 has mean 0 and std 0`},
	} {
		path := file("bad.safetensors", c.md)
		_, _, err := weightsNormalization(path)
		require.ErrorContains(t, err, "model.weights: "+path+": ")
		require.ErrorContains(t, err, c.want)
	}
}
