package finetune

import (
	"fmt"
	"log"

	"github.com/finetune-go/finetune/internal/printable"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/vision/data"
)

// Data is a run's images: the datasets, which samples train and which
// validate, and their loaders.
type Data struct {
	Classes []string
	// Train and Val index into TrainSet and ValSet; with a separate val
	// folder ValSet is that folder's dataset, else it is TrainSet.
	TrainSet, ValSet, TestSet *data.Dataset
	Train, Val                []int
	ClassWeights              []float64
	// Normalize is what images are normalised with; normalizeWhy says
	// where it comes from when data.mean or data.std is not set.
	Normalize    data.Normalize
	normalizeWhy string
	// EvalResize is the shorter side images are resized to before the
	// center crop at evaluation; resizeWhy says why when data.resize is
	// 0.
	EvalResize          int
	resizeWhy           string
	trainPipe, evalPipe *data.Pipeline
}

// OpenData reads the folders of cfg.Data and splits off validation.
func OpenData(cfg Config) (_ *Data, err error) {
	defer printable.Escape(&err)
	train, err := data.ImageFolder(cfg.Data.Train)
	if err != nil {
		return nil, fmt.Errorf("data.train: %w", err)
	}
	d := &Data{Classes: train.Classes, TrainSet: train, ValSet: train}
	if cfg.Data.Val != "" {
		if d.ValSet, err = data.ImageFolder(cfg.Data.Val); err != nil {
			return nil, fmt.Errorf("data.val: %w", err)
		}
		if err := data.MatchClasses(train, d.ValSet); err != nil {
			return nil, fmt.Errorf("data.val: %w", err)
		}
		d.Train = allIndices(len(train.Samples))
		d.Val = allIndices(len(d.ValSet.Samples))
	} else {
		if d.Train, d.Val, err = data.StratifiedSplit(train.Labels(), cfg.Data.ValSplit, cfg.Seed); err != nil {
			return nil, fmt.Errorf("data.val_split: %w", err)
		}
	}
	if cfg.Data.Test != "" {
		if d.TestSet, err = data.ImageFolder(cfg.Data.Test); err != nil {
			return nil, fmt.Errorf("data.test: %w", err)
		}
		if err := data.MatchClasses(train, d.TestSet); err != nil {
			return nil, fmt.Errorf("data.test: %w", err)
		}
	}
	counts := make([]int, len(d.Classes))
	for _, i := range d.Train {
		counts[train.Samples[i].Label]++
	}
	d.ClassWeights = make([]float64, len(counts))
	for c, n := range counts {
		if n == 0 {
			return nil, fmt.Errorf("data.train: class %q has no training images after the validation split", d.Classes[c])
		}
		d.ClassWeights[c] = float64(len(d.Train)) / float64(len(counts)*n)
	}
	if d.Normalize, d.normalizeWhy, err = normalization(cfg); err != nil {
		return nil, err
	}
	d.EvalResize, d.resizeWhy = evalResize(cfg, train, d.Train)
	if err := d.pipelines(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// pipelines makes the training and evaluation pipelines of cfg, with
// d's normalisation and evaluation resize.
func (d *Data) pipelines(cfg Config) error {
	norm := d.Normalize
	var err error
	if d.evalPipe, err = data.EvalPipeline(d.EvalResize, cfg.Data.ImageSize, norm); err != nil {
		return fmt.Errorf("data.resize: %w", err)
	}
	d.trainPipe = d.evalPipe
	if a := cfg.Augment; a.Enabled {
		d.trainPipe, err = data.TrainPipeline(data.AugmentConfig{
			Size: cfg.Data.ImageSize, Scale: a.Scale, Ratio: a.Ratio, HFlip: a.HFlip, VFlip: a.VFlip,
			Rotation: a.Rotation, ColorJitter: data.ColorJitter{Brightness: a.Brightness, Contrast: a.Contrast,
				Saturation: a.Saturation, Hue: a.Hue}, Normalize: norm,
		})
		if err != nil {
			return fmt.Errorf("augment: %w", err)
		}
	}
	return nil
}

func allIndices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// loaderKind selects a pipeline and ordering.
type loaderKind int

const (
	trainLoader loaderKind = iota // augmented (when configured), shuffled
	fixedLoader                   // evaluation transforms, in order
	// keepAllLoader is a fixedLoader that keeps every image it loads: the
	// no-batch-of-1 rule is training BatchNorm's need, and under
	// data.on_bad_image: skip it would drop a lone image from validation,
	// features or evaluation.
	keepAllLoader
	// viewLoader is a trainLoader in order that keeps every image: pass
	// e's image at each position is the one trainLoader's pass e has
	// there (the pipeline draws from the seed, the pass and the
	// position), so it computes the views a stage caches in the order of
	// its images.
	viewLoader
)

// loader makes a batch loader over indices of set.
//
// onSkip, when not nil, is told of the images skipped under
// data.on_bad_image: skip instead of logf.
func (d *Data) loader(cfg Config, at placement, set *data.Dataset, indices []int, kind loaderKind, logf func(string, ...any), onSkip func(data.SkippedImage)) (*data.BatchLoader, error) {
	pipe := d.evalPipe
	if kind == trainLoader || kind == viewLoader {
		pipe = d.trainPipe
	}
	policy := data.FailOnBadImage
	if cfg.Data.OnBadImage == "skip" {
		policy = data.SkipBadImage
	}
	cache := int64(cfg.Data.CacheMB) << 20
	if cache == 0 {
		cache = -1
	}
	if logf == nil {
		logf = log.Printf
	}
	opts := data.BatchOptions{
		BatchSize:  cfg.Data.BatchSize,
		Workers:    cfg.Data.Workers,
		Shuffle:    kind == trainLoader,
		Seed:       cfg.Seed,
		CacheBytes: cache,
		OnBadImage: policy,
		PinMemory:  at.device.Type == torch.DeviceCUDA,
		Logf:       logf,
		OnSkip:     onSkip,
	}
	if kind == keepAllLoader || kind == viewLoader {
		opts.Singleton = data.KeepSingleton
	}
	if kind == trainLoader {
		// Each rank of a data-parallel group trains on its share; the
		// fixed loaders (validation, features, AdaBN) stay whole.
		opts.Sampler = at.shard
	}
	return data.NewBatchLoader(&data.Loader{Dataset: set, Pipeline: pipe}, indices, opts)
}
