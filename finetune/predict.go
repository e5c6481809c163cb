package finetune

import (
	"context"
	"fmt"
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
func ImageFiles(paths []string) ([]string, error) {
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

// Predict classifies image files with m, using the evaluation transforms
// of the checkpoint's configuration. With tta (test-time augmentation) an
// image's probabilities are the mean of the softmax of the image and of
// its horizontal mirror. Predictions are in the order of files.
func Predict(ctx context.Context, m *Model, meta Meta, files []string, tta bool) ([]Prediction, error) {
	set := &data.Dataset{Root: "predict", Classes: meta.Classes}
	for _, f := range files {
		set.Samples = append(set.Samples, data.Sample{Path: f})
	}
	// Every file asked about gets an answer, or the error naming it.
	meta.Config.Data.OnBadImage = "error"
	_, loader, err := evalLoader(meta, set)
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	m.Train(false)
	at := modelPlacement(m)
	out := make([]Prediction, len(files))
	err = torch.NoGrad(func() error {
		for b, err := range loader.Epoch(ctx, 0) {
			if err != nil {
				return err
			}
			probs, err := predictBatch(m, at, b.Images, tta)
			b.Free()
			if err != nil {
				return err
			}
			k := len(meta.Classes)
			for j, i := range b.Indices {
				p := probs[j*k : (j+1)*k]
				if slices.ContainsFunc(p, math.IsNaN) {
					return fmt.Errorf("predict: %s: the model gives NaN probabilities: its weights are not usable", printable.Name(files[i]))
				}
				best := 0
				for c := range p {
					if p[c] > p[best] {
						best = c
					}
				}
				out[i] = Prediction{Path: files[i], Class: meta.Classes[best], Probabilities: p}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
