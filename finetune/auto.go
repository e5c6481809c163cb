package finetune

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"

	"github.com/finetune-go/finetune/finetune/probe"
	"github.com/finetune-go/finetune/finetune/shift"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/finetune-go/finetune/vision/models"
)

// shiftSample is how many training images the BatchNorm shift is
// measured on.
const shiftSample = 256

// resolved records what the "auto" settings stood for on this data, so
// that a resumed run uses the same.
type resolved struct {
	BatchNorm string  `json:"batchnorm"`
	Stages    []Stage `json:"stages"`
	// Searched says the quick search ran; LR and WeightDecay are what it
	// chose.
	Searched    bool    `json:"searched"`
	LR          float64 `json:"lr"`
	WeightDecay float64 `json:"weight_decay"`
	Probe       float64 `json:"probe_accuracy"`
	HaveProbe   bool    `json:"have_probe"`
	Baselines   bool    `json:"baselines"`
	// FellBack says the run ended with the probe's model
	// (probe_fallback).
	FellBack bool `json:"fell_back"`
}

// apply puts the decisions into c.
func (r *resolved) apply(c *Config) {
	if r.BatchNorm != "" {
		c.Train.BatchNorm = r.BatchNorm
	}
	if r.Stages != nil {
		c.Stages = append([]Stage(nil), r.Stages...)
	}
	if r.Searched {
		c.Train.LR, c.Train.WeightDecay = r.LR, r.WeightDecay
	}
}

// resolveAuto measures how far the training images are from the
// backbone's stored BatchNorm statistics and decides train.batchnorm: auto
// and, with recipe: auto, the fine-tuning stages' freeze point.
func (tr *trainer) resolveAuto(ctx context.Context) error {
	cfg := &tr.cfg
	r := &tr.state.Auto
	if cfg.Train.BatchNorm != "auto" && cfg.Recipe != "auto" {
		return nil
	}
	if cfg.Model.Weights == "none" {
		if cfg.Train.BatchNorm == "auto" {
			r.BatchNorm = "train"
			tr.info("train.batchnorm: auto → train: no pretrained statistics to keep (model.weights: none)")
		}
		r.apply(cfg)
		return tr.m.SetBNMode(cfg.Train.BatchNorm)
	}
	sample := append([]int(nil), tr.d.Train...)
	rand.New(rand.NewPCG(cfg.Seed, 0x5417)).Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
	sample = sample[:min(len(sample), shiftSample)]
	loader, err := tr.d.loader(*cfg, tr.at, tr.d.TrainSet, sample, fixedLoader, tr.loaderLog)
	if err != nil {
		return err
	}
	defer loader.Close()
	report, err := shift.Measure(ctx, tr.m.Backbone, func(yield func(*torch.Tensor, error) bool) {
		for b, err := range loader.Epoch(ctx, 0) {
			if err != nil {
				yield(nil, err)
				return
			}
			x, err := tr.at.input(b.Images)
			ok := yield(x, err)
			b.Free()
			if !ok || err != nil {
				return
			}
		}
	}, shiftSample)
	if err != nil {
		return fmt.Errorf("measuring the BatchNorm shift: %w", err)
	}
	if tr.primary {
		if err := writeJSON(filepath.Join(tr.runDir(), "shift.json"), report); err != nil {
			return err
		}
	}
	tr.shiftReport = report
	if cfg.Train.BatchNorm == "auto" {
		mode, why := shift.ChooseBN(report)
		r.BatchNorm = mode
		tr.info("train.batchnorm: auto → %s: %s", mode, why)
	}
	if cfg.Recipe == "auto" {
		point, why := shift.SuggestFreeze(report, len(tr.d.Train))
		r.Stages = append([]Stage(nil), cfg.Stages...)
		for i := 1; i < len(r.Stages); i++ {
			r.Stages[i].Freeze = point
		}
		tr.info("recipe: auto → fine-tuning stages frozen up to %s: %s", point, why)
	}
	r.apply(cfg)
	return tr.m.SetBNMode(cfg.Train.BatchNorm)
}

// baselines runs, once, on the first stage's frozen features: the linear
// probe (reported beside the result, the head's starting point with
// model.head.init: probe, or the whole run with recipe: linear-probe) and
// the quick search over the head's learning rate and weight decay.
func (tr *trainer) baselines(ctx context.Context, p stagePlan, feats *stageFeatures) error {
	r := &tr.state.Auto
	cfg := &tr.cfg
	initHead := cfg.Model.Head.Init == "probe" && len(cfg.Model.Head.Hidden) == 0 && cfg.Recipe != "linear-probe"
	wantProbe := cfg.Probe || cfg.Recipe == "linear-probe" || initHead
	wantSearch := cfg.Search == "quick" && feats.train != nil && cfg.Recipe != "linear-probe"
	if !wantProbe && !wantSearch {
		return nil
	}
	if !tr.cacheValid() {
		if cfg.Recipe == "linear-probe" {
			return fmt.Errorf("recipe: linear-probe needs fixed backbone features: stage %s must freeze everything "+
				"(freeze: all) with train.batchnorm frozen, adapt or auto", p.Name)
		}
		tr.info("linear probe, model.head.init: probe and search skipped: the backbone's features are not fixed in stage %s", p.Name)
		return nil
	}
	// Without the feature cache the probe computes its own, so that
	// train.cache_features stays a matter of speed, never of the result.
	val := feats.val
	if val == nil {
		var err error
		if val, err = tr.features(ctx, tr.valLoader); err != nil {
			return fmt.Errorf("features for the linear probe: %w", err)
		}
		defer val.Free()
	}
	train := feats.train
	if train == nil {
		fixed, err := tr.d.loader(*cfg, tr.at, tr.d.TrainSet, tr.d.Train, fixedLoader, tr.loaderLog)
		if err != nil {
			return err
		}
		train, err = tr.features(ctx, fixed)
		fixed.Close()
		if err != nil {
			return fmt.Errorf("features for the linear probe: %w", err)
		}
		defer train.Free()
	}
	labels := tr.labelsOf(tr.d.TrainSet, tr.d.Train)
	valLabels := tr.labelsOf(tr.d.ValSet, tr.d.Val)
	if n, _ := train.Size(0); int(n) != len(labels) {
		tr.warn("linear probe and search skipped: %d training images could not be loaded", len(labels)-int(n))
		return nil
	}
	k := len(tr.d.Classes)
	if wantProbe {
		pm, cv, err := probe.FitCV(train, labels, k, probe.CVOptions{Seed: cfg.Seed})
		if err != nil {
			return fmt.Errorf("linear probe: %w", err)
		}
		acc, err := pm.Accuracy(val, valLabels)
		if err != nil {
			return fmt.Errorf("linear probe: %w", err)
		}
		r.Probe, r.HaveProbe = acc, true
		tr.info("linear probe baseline (C = %g chosen by cross-validation, %.4f there): validation accuracy %.4f", pm.C, cv.BestAccuracy, acc)
		if cfg.Recipe == "linear-probe" {
			return tr.headFromProbe(pm)
		}
		if initHead {
			if err := tr.headFromProbe(pm); err != nil {
				return err
			}
			if err := tr.dp.broadcastModel(tr.m.Head); err != nil {
				return err
			}
			tr.info("model.head.init: probe: the head starts as the linear probe")
			if cfg.ProbeFallback {
				if err := tr.keepProbeStart(); err != nil {
					return err
				}
			}
		}
	}
	if wantSearch {
		res, err := probe.Search(ctx, train, labels, k, probe.SearchOptions{
			Seed: cfg.Seed, BatchSize: cfg.Data.BatchSize, LabelSmoothing: cfg.Train.LabelSmoothing,
			NewHead: func(in, classes int64) (nn.Layer, error) { return NewHead(cfg.Model.Head, in, classes) },
		})
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		if tr.primary {
			if err := res.WriteJSON(tr.runDir()); err != nil {
				return err
			}
		}
		r.Searched, r.LR, r.WeightDecay = true, res.Best.LR, res.Best.WeightDecay
		r.apply(cfg)
		tr.info("search: quick → train.lr %g, train.weight_decay %g (cross-validated accuracy %.4f; results in search.json)",
			res.Best.LR, res.Best.WeightDecay, res.Best.Accuracy)
		if tr.opt, tr.baseLR, err = newOptimizer(cfg.Train, tr.m, p.BackboneLRMult); err != nil {
			return err
		}
	}
	return nil
}

func (tr *trainer) labelsOf(set interface{ Labels() []int }, indices []int) []int {
	all := set.Labels()
	out := make([]int, len(indices))
	for i, k := range indices {
		out[i] = all[k]
	}
	return out
}

// headFromProbe makes the head the probe's logistic regression.
func (tr *trainer) headFromProbe(pm *probe.Model) error {
	var lin *nn.Linear
	for _, c := range tr.m.Head.Children() {
		if l, ok := c.Value.(*nn.Linear); ok {
			lin = l
		}
	}
	if lin == nil {
		return fmt.Errorf("recipe: linear-probe: the head has no linear layer")
	}
	var w []float32
	for _, row := range pm.Coef {
		for _, v := range row {
			w = append(w, float32(v))
		}
	}
	b := make([]float32, len(pm.Intercept))
	for i, v := range pm.Intercept {
		b[i] = float32(v)
	}
	return torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		wt, err := torch.FromSlice(w, lin.Out, lin.In)
		if err != nil {
			return err
		}
		bt, err := torch.FromSlice(b)
		if err != nil {
			return err
		}
		if err := lin.Parameter("weight").Copy_(wt); err != nil {
			return err
		}
		return lin.Parameter("bias").Copy_(bt)
	})
}

// MeasureShift measures, for cfg's backbone and weights, how far the
// images of dir (a folder with one subfolder per class) are from the
// stored BatchNorm statistics, on a seeded sample of up to 256 images. It
// also returns how many images dir holds.
func MeasureShift(ctx context.Context, cfg Config, dir string, hub *models.Hub) (*shift.Report, int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	set, err := data.ImageFolder(dir)
	if err != nil {
		return nil, 0, err
	}
	if cfg.Model.Weights == "none" {
		return nil, 0, fmt.Errorf("model.weights: none: there are no stored statistics to compare with")
	}
	m, err := buildModel(ctx, cfg, int64(len(set.Classes)), hub, func(string, ...any) {})
	if err != nil {
		return nil, 0, err
	}
	defer nn.Free(m)
	cfg.Train.BatchNorm = "auto"
	tr := &trainer{cfg: cfg, m: m, d: &Data{TrainSet: set, Train: allIndices(len(set.Samples))}}
	pipe, err := data.EvalPipeline(cfg.EvalResize(), cfg.Data.ImageSize)
	if err != nil {
		return nil, 0, err
	}
	tr.d.evalPipe = pipe
	if err := tr.resolveAuto(ctx); err != nil {
		return nil, 0, err
	}
	return tr.shiftReport, len(set.Samples), nil
}
