package finetune

import (
	"fmt"
	"image"
	"math/rand/v2"

	"github.com/finetune-go/finetune/internal/seed"
	"github.com/finetune-go/finetune/vision/data"
)

// AugmentSample is one training image as evaluation sees it and as the
// training pipeline delivers it, several times.
type AugmentSample struct {
	Path string
	// Eval is the evaluation transforms' view (resize, center crop):
	// the same every time.
	Eval *image.NRGBA
	// Train are draws of the training pipeline (augment.*), which differ
	// when augmentation is on.
	Train []*image.NRGBA
}

// MaxAugmentImages is how many training images PreviewAugment shows at
// most; more draws go to the same images.
const MaxAugmentImages = 4

// PreviewAugment returns n draws of cfg's training pipeline over
// training images of cfg.Data.Train: up to MaxAugmentImages images, spread
// over the training split, each with its evaluation view and its share of
// the n draws. Pixels are shown without the normalisation. The draws are
// a function of s, as the loader's are of the seed.
func PreviewAugment(cfg Config, n int, s uint64) ([]AugmentSample, error) {
	if n < 1 {
		return nil, fmt.Errorf("augment preview: %d images: at least 1", n)
	}
	d, err := OpenData(cfg)
	if err != nil {
		return nil, err
	}
	k := min(n, MaxAugmentImages, len(d.Train))
	r := rand.New(rand.NewPCG(s, seed.Mix(s, 1)))
	out := make([]AugmentSample, k)
	for i := range out {
		path := d.TrainSet.Samples[d.Train[i*len(d.Train)/k]].Path
		img, err := data.Decode(path, 0)
		if err != nil {
			return nil, err
		}
		view := func(p *data.Pipeline, r *rand.Rand) (*image.NRGBA, error) {
			chw, err := p.Apply(img, r)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return unnormalize(chw.Data, chw.Width, chw.Height, p.Normalization()), nil
		}
		out[i] = AugmentSample{Path: path}
		if out[i].Eval, err = view(d.evalPipe, nil); err != nil {
			return nil, err
		}
		for j := i; j < n; j += k {
			t, err := view(d.trainPipe, r)
			if err != nil {
				return nil, err
			}
			out[i].Train = append(out[i].Train, t)
		}
	}
	return out, nil
}
