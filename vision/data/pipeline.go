package data

import (
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
)

// A Step is one image transform of a Pipeline. Apply returns the
// transformed image without modifying img; it may return img itself when
// it changes nothing. A random step draws all its parameters from r, so a
// seeded r reproduces its output; Random reports whether it does.
type Step interface {
	Apply(img *image.NRGBA, r *rand.Rand) *image.NRGBA
	Random() bool
}

// validator is implemented by the package's steps to check their fields.
type validator interface {
	validate() error
}

// A Pipeline runs image steps in order, then converts the result with
// ToCHW and normalises it. It is immutable and safe for concurrent use
// with one *rand.Rand per goroutine.
type Pipeline struct {
	steps []Step
	norm  Normalize
}

// NewPipeline returns a pipeline of steps followed by ToCHW and norm. It
// checks the fields of the package's steps and that norm's deviations are
// positive.
func NewPipeline(norm Normalize, steps ...Step) (*Pipeline, error) {
	if err := norm.validate(); err != nil {
		return nil, fmt.Errorf("data: pipeline: %w", err)
	}
	for i, s := range steps {
		if s == nil {
			return nil, fmt.Errorf("data: pipeline: step %d is nil", i)
		}
		if v, ok := s.(validator); ok {
			if err := v.validate(); err != nil {
				return nil, fmt.Errorf("data: pipeline: step %d: %w", i, err)
			}
		}
	}
	return &Pipeline{steps: append([]Step(nil), steps...), norm: norm}, nil
}

// Random reports whether any step of p is random. An evaluation or test
// pipeline must not be.
func (p *Pipeline) Random() bool {
	for _, s := range p.steps {
		if s.Random() {
			return true
		}
	}
	return false
}

// Steps returns a copy of p's image steps.
func (p *Pipeline) Steps() []Step {
	return append([]Step(nil), p.steps...)
}

// Normalization returns the normalisation p applies after ToCHW.
func (p *Pipeline) Normalization() Normalize {
	return p.norm
}

// errNoRand is returned when a random pipeline is given no generator.
var errNoRand = errors.New("random pipeline needs a *rand.Rand")

// Apply runs img through p. r may be nil only when p is not random.
func (p *Pipeline) Apply(img *image.NRGBA, r *rand.Rand) (CHW, error) {
	if img == nil || img.Bounds().Empty() {
		return CHW{}, errors.New("data: pipeline: empty image")
	}
	if r == nil && p.Random() {
		return CHW{}, fmt.Errorf("data: pipeline: %w", errNoRand)
	}
	for _, s := range p.steps {
		img = s.Apply(img, r)
		if img == nil || img.Bounds().Empty() {
			return CHW{}, fmt.Errorf("data: pipeline: step %T returned an empty image", s)
		}
	}
	t := ToCHW(img)
	p.norm.Apply(t)
	return t, nil
}

// AugmentConfig describes a training pipeline: RandomResizedCrop to
// Size×Size, then the enabled flips, rotation and colour jitter in that
// order, then ToCHW and normalisation. Zero Scale, Ratio and Normalize mean
// torchvision's defaults; other zero fields disable their step.
type AugmentConfig struct {
	Size        int        // output side in pixels, e.g. 224
	Scale       [2]float64 // crop area fraction range; zero means {0.08, 1}
	Ratio       [2]float64 // crop aspect ratio range; zero means {3/4, 4/3}
	HFlip       float64    // probability of a horizontal flip, e.g. 0.5
	VFlip       float64    // probability of a vertical flip
	Rotation    float64    // maximum rotation in degrees
	ColorJitter ColorJitter
	Normalize   Normalize // zero means ImageNet
}

// TrainPipeline builds the training pipeline cfg describes, or reports the
// first invalid field.
func TrainPipeline(cfg AugmentConfig) (*Pipeline, error) {
	if cfg.Scale == [2]float64{} {
		cfg.Scale = [2]float64{0.08, 1}
	}
	if cfg.Ratio == [2]float64{} {
		cfg.Ratio = [2]float64{3.0 / 4, 4.0 / 3}
	}
	if cfg.Normalize == (Normalize{}) {
		cfg.Normalize = ImageNet
	}
	steps := []Step{RandomResizedCrop{Size: cfg.Size, Scale: cfg.Scale, Ratio: cfg.Ratio}}
	if cfg.HFlip != 0 {
		steps = append(steps, HorizontalFlip{P: cfg.HFlip})
	}
	if cfg.VFlip != 0 {
		steps = append(steps, VerticalFlip{P: cfg.VFlip})
	}
	if cfg.Rotation != 0 {
		steps = append(steps, RandomRotation{Degrees: cfg.Rotation})
	}
	if cfg.ColorJitter != (ColorJitter{}) {
		steps = append(steps, cfg.ColorJitter)
	}
	return NewPipeline(cfg.Normalize, steps...)
}

// EvalPipeline builds the standard evaluation pipeline: Resize(resize),
// CenterCrop(crop×crop), ToCHW, normalisation norm (zero means
// ImageNet's); torchvision's ResNet recipe is EvalPipeline(256, 224,
// ImageNet) (232, 224 for the V2 weights). It takes no augmentation
// settings, so augmenting validation or test data through it is
// impossible. crop must not exceed resize: a larger crop would pad the
// image with black.
func EvalPipeline(resize, crop int, norm Normalize) (*Pipeline, error) {
	if crop > resize {
		return nil, fmt.Errorf("data: eval pipeline: crop %d larger than resize %d", crop, resize)
	}
	if norm == (Normalize{}) {
		norm = ImageNet
	}
	return NewPipeline(norm, Resize{Size: resize}, CenterCrop{Height: crop, Width: crop})
}
