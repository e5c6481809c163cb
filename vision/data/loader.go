package data

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// A Loader turns dataset samples into normalised CHW images: it decodes
// the file and runs the pipeline, as torchvision does. It is safe for
// concurrent use with one *rand.Rand per goroutine. A BatchLoader batches
// its samples, in parallel.
type Loader struct {
	Dataset   *Dataset
	Pipeline  *Pipeline
	Decode    Decoder // nil means DecodeTurbo (DecodeScaled in a BatchLoader)
	MaxPixels int     // images over this many pixels are refused; <= 0 means DefaultMaxPixels
}

// Load decodes and transforms sample i of the dataset, drawing random
// parameters from r, and returns the image and its label. Errors name the
// file.
func (l *Loader) Load(i int, r *rand.Rand) (CHW, int, error) {
	if l.Dataset == nil || l.Pipeline == nil {
		return CHW{}, 0, errors.New("data: loader needs a Dataset and a Pipeline")
	}
	if i < 0 || i >= len(l.Dataset.Samples) {
		return CHW{}, 0, fmt.Errorf("data: load: index %d out of range [0, %d)", i, len(l.Dataset.Samples))
	}
	s := l.Dataset.Samples[i]
	decode := l.Decode
	if decode == nil {
		decode = DecodeTurbo
	}
	maxPixels := l.MaxPixels
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	img, err := decode(s.Path, maxPixels)
	if err != nil {
		return CHW{}, 0, err
	}
	t, err := l.Pipeline.Apply(img, r)
	if err != nil {
		return CHW{}, 0, fmt.Errorf("%s: %w", s.Path, err)
	}
	return t, s.Label, nil
}
