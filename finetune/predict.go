package finetune

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/finetune-go/finetune/internal/printable"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/vision/data"
)

// Prediction is a model's answer for one image.
type Prediction struct {
	Path string `json:"path"`
	// Class is the most probable class.
	Class string `json:"class"`
	// Probabilities are the softmax outputs, in the order of the
	// checkpoint's classes.
	Probabilities []float64 `json:"probabilities"`
}

// Probability returns the probability of the predicted class.
func (p Prediction) Probability() float64 { return slices.Max(p.Probabilities) }

// ImageFiles expands paths into image files: a file is kept as it is, a
// folder is searched recursively for files with an image extension
// (data.DefaultExtensions), in sorted order.
func ImageFiles(paths []string) (_ []string, err error) {
	defer printable.Escape(&err)
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(e.Name(), ".") && path != p {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !e.IsDir() && slices.Contains(data.DefaultExtensions, strings.ToLower(filepath.Ext(path))) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no images in %s", strings.Join(paths, ", "))
	}
	return out, nil
}

// PredictOptions say how Predict reads and classifies files; the zero
// value is valid.
type PredictOptions struct {
	// TTA (test-time augmentation) makes an image's probabilities the
	// mean of the softmax of the image and of its horizontal mirror.
	TTA bool
	// OnBadImage is error (also ""), stopping at the first file that
	// cannot be read with an error naming it, as a PyTorch DataLoader
	// raises PIL's error; or skip, leaving such files out and listing
	// them in Predictions.Skipped.
	OnBadImage string
}

// Predictions are Predict's answers.
type Predictions struct {
	// Predictions are in the order of the files, less those skipped.
	Predictions []Prediction
	// Skipped lists the files left out under OnBadImage: skip, with why.
	Skipped []data.SkippedImage
}

// Predict classifies image files with m, using the evaluation transforms
// of the checkpoint's configuration (meta), as opts say.
func Predict(ctx context.Context, m *Model, meta Meta, files []string, opts PredictOptions) (_ *Predictions, err error) {
	defer printable.Escape(&err)
	switch opts.OnBadImage {
	case "":
		opts.OnBadImage = "error"
	case "error", "skip":
	default:
		return nil, fmt.Errorf("data.on_bad_image: must be error or skip, got %q", opts.OnBadImage)
	}
	set := &data.Dataset{Root: "predict", Classes: meta.Classes}
	for _, f := range files {
		set.Samples = append(set.Samples, data.Sample{Path: f})
	}
	// The training run's setting is not inherited: every file asked about
	// gets an answer, or the error naming it, unless the caller says skip.
	meta.Config.Data.OnBadImage = opts.OnBadImage
	_, loader, err := evalLoader(meta, set)
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	m.Train(false)
	at := modelPlacement(m)
	out := make([]Prediction, len(files))
	answered := make([]bool, len(files))
	err = torch.NoGrad(func() error {
		for b, err := range loader.Epoch(ctx, 0) {
			if err != nil {
				return err
			}
			probs, err := predictBatch(m, at, b.Images, opts.TTA)
			b.Free()
			if err != nil {
				return err
			}
			k := len(meta.Classes)
			for j, i := range b.Indices {
				if out[i], err = newPrediction(files[i], meta.Classes, probs[j*k:(j+1)*k]); err != nil {
					return err
				}
				answered[i] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res := &Predictions{Skipped: loader.Skipped()}
	for i, p := range out {
		if answered[i] {
			res.Predictions = append(res.Predictions, p)
		}
	}
	return res, nil
}

// PredictImage classifies img, an image in memory, with m and the
// evaluation transforms of meta (a checkpoint's, or Result.Meta after
// Train), as Predict does for a file; tta as PredictOptions.TTA. The
// prediction's Path is empty. m stays the caller's.
func PredictImage(m *Model, meta Meta, img image.Image, tta bool) (Prediction, error) {
	if img == nil || img.Bounds().Empty() {
		return Prediction{}, errors.New("predict: empty image")
	}
	pipe, err := data.EvalPipeline(meta.evalResize(), meta.Config.Data.ImageSize, meta.Normalize)
	if err != nil {
		return Prediction{}, fmt.Errorf("checkpoint configuration: %w", err)
	}
	chw, err := pipe.Apply(data.ToRGB(img), nil)
	if err != nil {
		return Prediction{}, err
	}
	m.Train(false)
	var probs []float64
	err = torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		x, err := torch.FromSlice(chw.Data, 1, 3, int64(chw.Height), int64(chw.Width))
		if err == nil {
			probs, err = predictBatch(m, modelPlacement(m), x, tta)
		}
		return err
	})
	if err != nil {
		return Prediction{}, err
	}
	return newPrediction("", meta.Classes, probs)
}

// newPrediction names the most probable of classes, whose probabilities
// are p; NaN probabilities (weights that are not usable) are an error
// naming the image at path.
func newPrediction(path string, classes []string, p []float64) (Prediction, error) {
	if slices.ContainsFunc(p, math.IsNaN) {
		name := "the image"
		if path != "" {
			name = printable.Name(path)
		}
		return Prediction{}, fmt.Errorf("predict: %s: the model gives NaN probabilities: its weights are not usable", name)
	}
	best := 0
	for c := range p {
		if p[c] > p[best] {
			best = c
		}
	}
	return Prediction{Path: path, Class: classes[best], Probabilities: p}, nil
}

// predictBatch returns the class probabilities of images x (N×3×H×W on
// the CPU), row after row; at is where m is.
func predictBatch(m *Model, at placement, x *torch.Tensor, tta bool) ([]float64, error) {
	s := torch.NewScope()
	defer s.Close()
	x, err := at.input(x)
	if err != nil {
		return nil, err
	}
	probs := func(x *torch.Tensor) (*torch.Tensor, error) {
		logits, err := m.Forward(x)
		if err != nil {
			return nil, err
		}
		if logits, err = logits.ToDType(torch.Float64); err != nil {
			return nil, err
		}
		return torch.Softmax(logits, 1)
	}
	p, err := probs(x)
	if err != nil {
		return nil, err
	}
	if tta {
		flipped, err := x.Flip(3)
		if err == nil {
			flipped, err = at.input(flipped)
		}
		if err != nil {
			return nil, err
		}
		q, err := probs(flipped)
		if err != nil {
			return nil, err
		}
		if p, err = p.Add(q); err != nil {
			return nil, err
		}
		if p, err = p.MulScalar(0.5); err != nil {
			return nil, err
		}
	}
	if p, err = p.ToDevice(torch.CPU); err != nil {
		return nil, err
	}
	return p.Float64s()
}
