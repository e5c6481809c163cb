package finetune

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"slices"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/data"
)

// ImageResult is a model's answer for one labelled image: a row of
// predictions.csv.
type ImageResult struct {
	Path string
	// Label is the true class's index, Predicted the most probable
	// class's (the argmax of the logits, as the confusion counts it).
	Label, Predicted int
	// Probabilities are the softmax outputs, in the order of the classes.
	Probabilities []float64
	// Loss is the image's cross entropy: -log of the true class's
	// probability, computed from the logits.
	Loss float64
}

// imageResults turns a batch's logits (N×K, any device and type) into
// the results of the samples indices of set.
func imageResults(set *data.Dataset, indices []int, labels, preds []int64, logits *torch.Tensor) ([]ImageResult, error) {
	l, err := logits.ToDType(torch.Float64)
	if err == nil {
		l, err = l.ToDevice(torch.CPU)
	}
	var v []float64
	if err == nil {
		v, err = l.Float64s()
	}
	if err != nil {
		return nil, err
	}
	k := len(v) / max(len(indices), 1)
	out := make([]ImageResult, len(indices))
	for i, idx := range indices {
		row := v[i*k : (i+1)*k]
		peak := slices.Max(row)
		var z float64
		p := make([]float64, k)
		for c, x := range row {
			p[c] = math.Exp(x - peak)
			z += p[c]
		}
		for c := range p {
			p[c] /= z
		}
		out[i] = ImageResult{Path: set.Samples[idx].Path, Label: int(labels[i]), Predicted: int(preds[i]),
			Probabilities: p, Loss: peak + math.Log(z) - row[labels[i]]}
	}
	return out, nil
}

// TopLossCount is how many images top_losses.png shows.
const TopLossCount = 16

// TopLosses returns the n results of images with the highest loss, the
// worst first (a NaN loss counts as the highest).
func TopLosses(images []ImageResult, n int) []ImageResult {
	out := slices.Clone(images)
	slices.SortStableFunc(out, func(a, b ImageResult) int {
		an, bn := math.IsNaN(a.Loss), math.IsNaN(b.Loss)
		if an || bn {
			return -cmp.Compare(b2i(an), b2i(bn))
		}
		return -cmp.Compare(a.Loss, b.Loss)
	})
	return out[:min(n, len(out))]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Heatmap is a Grad-CAM map at the resolution of the last convolutional
// stage (layer4): W×H values in [0, 1], row after row, 1 where the
// class's evidence is strongest.
type Heatmap struct {
	W, H   int
	Values []float64
}

// At returns the value at column x, row y.
func (h Heatmap) At(x, y int) float64 { return h.Values[y*h.W+x] }

// Explanation is one image with where the model looked for a class.
type Explanation struct {
	ImageResult
	// Class is the class explained: the predicted one.
	Class int
	// View is the image as the model saw it: the evaluation transforms'
	// output (resized, cropped), without the normalisation.
	View *image.NRGBA
	// Heat is the Grad-CAM map of Class over View.
	Heat Heatmap
}

// TopLossReport is the images of a run with the highest loss, explained:
// an EventTopLosses's data.
type TopLossReport struct {
	// Split is "test" or "validation": the test set's images when the
	// run has one.
	Split   string
	Classes []string
	Images  []Explanation
}

// GradCAM returns, for each image of x (N×3×H×W, on m's device in its
// memory format), the Grad-CAM map (Selvaraju et al., 2017) of the class
// classes[i]: layer4's activations weighted by the mean gradient of the
// class's logit over each channel, summed over channels, clipped at 0 and
// scaled to a maximum of 1. It runs m as it is (call m.Train(false)
// first) and leaves its parameters' gradients as they were.
func (m *Model) GradCAM(x *torch.Tensor, classes []int) ([]Heatmap, error) {
	if m.resnet == nil {
		return nil, fmt.Errorf("grad-cam: the maps are layer4's, a ResNet's; %s has none", m.Backbone.ArchName())
	}
	if n, err := x.Size(0); err != nil || n != int64(len(classes)) {
		return nil, fmt.Errorf("grad-cam: %d classes for images of shape %v", len(classes), x.Shape())
	}
	s := torch.NewScope()
	defer s.Close()
	var act *torch.Tensor
	err := torch.NoGrad(func() error {
		var err error
		act, err = m.backboneFeatures(x)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The activation is made the leaf, so the backward pass stops there
	// and reaches no parameter: the head's gradients stay as they are.
	if act, err = act.Detach(); err == nil {
		act, err = act.ContiguousAs(torch.ContiguousFormat)
	}
	if err == nil {
		err = act.SetRequiresGrad(true)
	}
	if err != nil {
		return nil, err
	}
	var grad *torch.Tensor
	err = torch.EnableGrad(func() error {
		restore, err := freezeHead(m.Head)
		if err != nil {
			return err
		}
		defer restore()
		f, err := Pool(m.Pooling, act)
		if err != nil {
			return err
		}
		logits, err := m.Head.Forward(f)
		if err != nil {
			return err
		}
		idx, err := torch.FromSlice(toInt64s(classes), int64(len(classes)), 1)
		if err == nil {
			idx, err = idx.ToDevice(logits.Device())
		}
		if err != nil {
			return err
		}
		score, err := logits.Gather(1, idx)
		if err == nil {
			score, err = score.Sum()
		}
		if err == nil {
			err = score.Backward()
		}
		if err == nil {
			grad, err = act.Grad()
		}
		if err == nil && grad == nil {
			err = errors.New("grad-cam: no gradient reached layer4")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var maps []float64
	err = torch.NoGrad(func() error {
		weights, err := grad.MeanDims([]int64{2, 3}, true)
		var cam *torch.Tensor
		if err == nil {
			cam, err = act.Mul(weights)
		}
		if err == nil {
			cam, err = cam.SumDims([]int64{1}, false)
		}
		if err == nil {
			cam, err = cam.Relu()
		}
		if err == nil {
			cam, err = cam.ToDType(torch.Float64)
		}
		if err == nil {
			cam, err = cam.ToDevice(torch.CPU)
		}
		if err == nil {
			maps, err = cam.Float64s()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	shape := act.Shape()
	h, w := int(shape[2]), int(shape[3])
	out := make([]Heatmap, len(classes))
	for i := range out {
		v := maps[i*h*w : (i+1)*h*w]
		if top := slices.Max(v); top > 0 {
			for j := range v {
				v[j] /= top
			}
		}
		out[i] = Heatmap{W: w, H: h, Values: v}
	}
	return out, nil
}

// freezeHead stops head's parameters from recording gradients and
// returns what puts them back.
func freezeHead(head nn.Module) (func(), error) {
	params := nn.NamedParameters(head)
	var was []bool
	for _, p := range params {
		was = append(was, p.Value.RequiresGrad())
		if err := p.Value.SetRequiresGrad(false); err != nil {
			return nil, err
		}
	}
	return func() {
		for i, p := range params {
			_ = p.Value.SetRequiresGrad(was[i])
		}
	}, nil
}

func toInt64s(xs []int) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
}

// explain computes the Grad-CAM maps of results' predicted classes over
// their images, which are samples of set (results[i] is sample
// indices[i]), loaded with the evaluation transforms of pipe.
func explain(ctx context.Context, m *Model, cfg Config, pipe *data.Pipeline, set *data.Dataset, indices []int, results []ImageResult) ([]Explanation, error) {
	d := &Data{evalPipe: pipe}
	cfg.Data.OnBadImage = "error"
	loader, err := d.loader(cfg, placement{}, set, indices, keepAllLoader, nil, nil)
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	m.Train(false)
	at := modelPlacement(m)
	norm := pipe.Normalization()
	out := make([]Explanation, 0, len(results))
	for b, err := range loader.Epoch(ctx, 0) {
		if err != nil {
			return nil, err
		}
		err := func() error {
			defer b.Free()
			s := torch.NewScope()
			defer s.Close()
			x, err := at.input(b.Images)
			if err != nil {
				return err
			}
			first := len(out)
			var classes []int
			for j := range b.Indices {
				classes = append(classes, results[first+j].Predicted)
			}
			heat, err := m.GradCAM(x, classes)
			if err != nil {
				return err
			}
			pixels, err := b.Images.Float32s()
			if err != nil {
				return err
			}
			shape := b.Images.Shape()
			h, w := int(shape[2]), int(shape[3])
			for j := range b.Indices {
				view := unnormalize(pixels[j*3*h*w:(j+1)*3*h*w], w, h, norm)
				out = append(out, Explanation{ImageResult: results[first+j], Class: classes[j], View: view, Heat: heat[j]})
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// unnormalize turns a normalised CHW image back into pixels.
func unnormalize(chw []float32, w, h int, norm data.Normalize) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			var px [3]uint8
			for c := range 3 {
				v := float64(chw[(c*h+y)*w+x])*float64(norm.Std[c]) + float64(norm.Mean[c])
				px[c] = uint8(math.Round(255 * math.Max(0, math.Min(1, v))))
			}
			img.SetNRGBA(x, y, color.NRGBA{px[0], px[1], px[2], 0xff})
		}
	}
	return img
}

// Explain computes, for each image file, the model's prediction and the
// Grad-CAM map of the predicted class, with the evaluation transforms of
// meta's configuration. Label is -1 and Loss 0: the true class is not
// known.
func Explain(ctx context.Context, m *Model, meta Meta, files []string) ([]Explanation, error) {
	res, err := Predict(ctx, m, meta, files, PredictOptions{})
	if err != nil {
		return nil, err
	}
	preds := res.Predictions
	set := &data.Dataset{Root: "explain", Classes: meta.Classes}
	results := make([]ImageResult, len(files))
	for i, f := range files {
		set.Samples = append(set.Samples, data.Sample{Path: f})
		results[i] = ImageResult{Path: f, Label: -1, Predicted: slices.Index(meta.Classes, preds[i].Class),
			Probabilities: preds[i].Probabilities}
	}
	pipe, err := data.EvalPipeline(meta.evalResize(), meta.Config.Data.ImageSize, meta.Normalize)
	if err != nil {
		return nil, fmt.Errorf("checkpoint configuration: %w", err)
	}
	return explain(ctx, m, meta.Config, pipe, set, allIndices(len(files)), results)
}

// reportTopLosses explains the images with the highest loss of the test
// set (else validation) and records them as an EventTopLosses.
func (lp *loop) reportTopLosses(ctx context.Context, res *Result) error {
	if lp.opts.Recorder == nil || !lp.ev.primary || lp.m.resnet == nil {
		return nil // nobody keeps it, or no Grad-CAM to explain with (Model.GradCAM)
	}
	ev, set, split := res.Test, lp.d.TestSet, "test"
	if ev == nil {
		ev, set, split = res.Val, lp.d.ValSet, "validation"
	}
	if ev == nil || len(ev.Images) == 0 {
		return nil
	}
	top := TopLosses(ev.Images, TopLossCount)
	index := map[string]int{}
	for i, s := range set.Samples {
		index[s.Path] = i
	}
	indices := make([]int, len(top))
	for i, r := range top {
		indices[i] = index[r.Path]
	}
	images, err := explain(ctx, lp.m, lp.cfg, lp.d.evalPipe, set, indices, top)
	if err != nil {
		return fmt.Errorf("top losses: %w", err)
	}
	return lp.ev.record(Event{Kind: EventTopLosses, TopLosses: &TopLossReport{Split: split, Classes: lp.d.Classes, Images: images}})
}
