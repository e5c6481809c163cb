package finetune

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"

	"github.com/finetune-go/finetune/finetune/probe"
	"github.com/finetune-go/finetune/finetune/shift"
	"github.com/finetune-go/finetune/internal/plural"
	"github.com/finetune-go/finetune/internal/printable"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/finetune-go/finetune/vision/models"
)

// shiftSample is how many training images the BatchNorm shift is
// measured on.
const shiftSample = 256

// adaptSample is at most how many training images AdaBN re-estimates the
// BatchNorm statistics on: the statistics converge long before a large
// training set is through. Measured on the seed scenario (ResNet50 at
// 224 with estimated statistics, 1,600 training images, two seeded
// samples of each size), the statistics of n images differ from those of
// all 1,600 by a symmetric KL divergence (shift.SymmetricKL, per channel)
// of 0.0007 on average over the layers for n = 128, 0.0003 for 256 and
// 0.00015 for 512, the worst layer (the stem) 0.011, 0.003 and 0.001:
// from 256 on, a few hundredths of the smallest shift that changes a
// decision (shift.Threshold, 0.176), for a sixth of the pass over all
// the images.
const adaptSample = 256

// adaptReason is adaptSample's reason in the plan.
const adaptReason = "the statistics of 256 images differ from those of thousands by a few hundredths of the smallest shift " +
	"that matters (measured on the seed scenario)"

// seededSample returns up to n of indices, chosen by seed on stream, in
// the order drawn: batches of it mix the classes as a shuffled loader's
// do.
func seededSample(seed, stream uint64, indices []int, n int) []int {
	sample := append([]int(nil), indices...)
	rand.New(rand.NewPCG(seed, stream)).Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
	return sample[:min(len(sample), n)]
}

// trainEvalSample is at most how many training images each epoch's
// train accuracy is measured on: enough to tell 0.9 from 0.95, few
// enough to cost a small part of an epoch.
const trainEvalSample = 256

// trainSample returns the training images (of indices train) each
// epoch's train accuracy is measured on: up to trainEvalSample of them,
// chosen by seed, in their order in train, so the batches are the same
// every epoch and in a resumed run.
func trainSample(seed uint64, train []int) []int {
	if len(train) <= trainEvalSample {
		return train
	}
	pos := rand.New(rand.NewPCG(seed, 0x7a11)).Perm(len(train))[:trainEvalSample]
	slices.Sort(pos)
	out := make([]int, len(pos))
	for i, p := range pos {
		out[i] = train[p]
	}
	return out
}

// resolution is what resolving a plan leaves for the loop besides the
// plan: the first stage's features, the probe's model and the reports.
type resolution struct {
	feats      *stageFeatures
	cached     string
	probeStart []nn.Named[*torch.Tensor]
	// probeEvals are the probe's model's evaluations on the cached
	// features, nil when the head is not the probe's or they were not
	// cached.
	probeEvals *evaluations
	artifacts  []Artifact
}

// resolve makes, into plan, every decision left before the first epoch
// (the placement is already there): what the auto settings stand for on
// these data, the stages as they will train, the probe and the head's
// start, the searched learning rate. It prepares the first stage (its
// freeze point, AdaBN, its features), which the probe and the search
// need, and hands that to the loop.
func (r *run) resolve(ctx context.Context, plan *Plan) (*resolution, error) {
	cfg := r.cfg
	res := &resolution{}
	ok := false
	defer func() {
		if !ok {
			res.free(r.m)
		}
	}()
	var err error
	if plan.Weights, err = weightsFile(cfg.Model.Weights); err != nil {
		return nil, err
	}
	if plan.Data, err = fingerprint(r.d); err != nil {
		return nil, err
	}
	freeze, err := r.resolveBN(ctx, plan, res)
	if err != nil {
		return nil, err
	}
	if err := r.m.SetBNMode(plan.BatchNorm); err != nil {
		return nil, err
	}
	final, err := r.resolveStages(plan, freeze)
	if err != nil {
		return nil, err
	}
	r.familyFreeze(plan)
	first := stagePlan{PlanStage: plan.Stages[0]}
	if err := r.m.Freeze(first.Freeze, cfg.Train.BNAffine); err != nil {
		return nil, fmt.Errorf("stages[0].freeze: %w", err)
	}
	if plan.BatchNorm == "adapt" {
		if err := r.adaptBN(ctx, plan); err != nil {
			return nil, err
		}
	}
	plan.TrainSample = len(trainSample(cfg.Seed, r.d.Train))
	r.decide(plan, "train_accuracy", fmt.Sprintf("evaluation mode on %d training images", plan.TrainSample),
		"a sample fixed by the seed, without augmentation or dropout, measured as validation is: the gap compares like with like",
		fmt.Sprintf("train accuracy and the gap: measured each epoch in evaluation mode on %d training images without augmentation "+
			"(a sample fixed by the seed); train loss: the training steps', under augmentation", plan.TrainSample))
	res.cached = first.Cache
	if res.feats, err = r.stageFeatures(ctx, first); err != nil {
		return nil, err
	}
	if err := r.baselines(ctx, plan, first, res); err != nil {
		return nil, err
	}
	if err := r.fitStages(plan, final, res); err != nil {
		return nil, err
	}
	if cfg.Recipe == "linear-probe" {
		plan.Stages = nil
		r.decide(plan, "recipe", "linear-probe", "the probe is the model", "recipe: linear-probe: the probe is the model; no stage trains")
	}
	ok = true
	return res, nil
}

func (res *resolution) free(m *Model) {
	if res.feats != nil {
		res.feats.free(m)
	}
	for _, b := range res.probeStart {
		b.Value.Free()
	}
}

// resolveBN measures how far the training images are from the
// backbone's stored BatchNorm statistics and decides train.batchnorm:
// auto and, with recipe: auto, the freeze point of the stages after the
// first ("" when not auto).
func (r *run) resolveBN(ctx context.Context, plan *Plan, res *resolution) (freeze string, err error) {
	cfg := r.cfg
	plan.BatchNorm = cfg.Train.BatchNorm
	arch := cfg.Model.Arch
	if !models.HasBatchNorm(arch) {
		why := arch + " has no BatchNorm layers: LayerNorm normalises each image by itself, nothing to keep, adapt or measure"
		plan.BatchNorm = "none"
		r.decide(plan, "train.batchnorm", "none", why, "train.batchnorm: auto → none: "+why)
		r.noShiftRecipe(plan, why)
		return "", nil
	}
	if cfg.Train.BatchNorm != "auto" && cfg.Recipe != "auto" {
		return "", nil
	}
	if cfg.Model.Weights == "none" {
		if cfg.Train.BatchNorm == "auto" {
			plan.BatchNorm = "train"
			r.decide(plan, "train.batchnorm", "train", "no pretrained statistics to keep (model.weights: none)",
				"train.batchnorm: auto → train: no pretrained statistics to keep (model.weights: none)")
		}
		return "", nil
	}
	report, err := measureShift(ctx, r.cfg, r.at, r.m, r.d, r.loaderLog, r.skip)
	if err != nil {
		return "", err
	}
	res.artifacts = append(res.artifacts, Artifact{Name: "shift.json", Value: report})
	if w := report.Normalization(); w != "" {
		r.warn("%s", w)
	}
	if cfg.Train.BatchNorm == "auto" {
		mode, why := shift.ChooseBN(report)
		plan.BatchNorm = mode
		r.decide(plan, "train.batchnorm", mode, why, fmt.Sprintf("train.batchnorm: auto → %s: %s", mode, why))
	}
	if cfg.Recipe == "auto" && r.m.resnet == nil {
		// SuggestFreeze's rule names and was measured on a ResNet's stages.
		r.noShiftRecipe(plan, "recipe: auto's freeze rule is a ResNet's (shift.SuggestFreeze), not "+arch+"'s")
		return "", nil
	}
	if cfg.Recipe == "auto" {
		point, why := shift.SuggestFreeze(report, len(r.d.Train))
		r.decide(plan, "recipe", point, why, fmt.Sprintf("recipe: auto → fine-tuning stages frozen up to %s: %s", point, why))
		return point, nil
	}
	return "", nil
}

// noShiftRecipe records, under recipe: auto, that the stages keep their
// configured freeze points: without a measured shift (why) there is
// nothing to choose them from.
func (r *run) noShiftRecipe(plan *Plan, why string) {
	if r.cfg.Recipe == "auto" {
		r.decide(plan, "recipe", "default", why, "recipe: auto → the stages as configured: "+why)
	}
}

// familyFreeze records, for each of plan's stages whose freeze point
// means another on this family (Model.familyPoint: the default recipe's
// layer2 on a network that is not a ResNet), the point it freezes at.
func (r *run) familyFreeze(plan *Plan) {
	for i := range plan.Stages {
		ps := &plan.Stages[i]
		if p := r.m.familyPoint(ps.Freeze); p != ps.Freeze {
			why := fmt.Sprintf("the default's %s leaves a ResNet's last two stages training; %s's last two train after %s",
				ps.Freeze, r.cfg.Model.Arch, p)
			ps.Freeze = p
			r.decide(plan, fmt.Sprintf("stages[%d].freeze", i), p, why, fmt.Sprintf("stage %s: freeze: %s: %s", ps.Name, p, why))
		}
	}
}

// measureShift measures the BatchNorm shift of m's backbone on a seeded
// sample of the training images.
func measureShift(ctx context.Context, cfg Config, at placement, m *Model, d *Data, logf func(string, ...any), onSkip func(data.SkippedImage)) (*shift.Report, error) {
	sample := seededSample(cfg.Seed, 0x5417, d.Train, shiftSample)
	loader, err := d.loader(cfg, at, d.TrainSet, sample, fixedLoader, logf, onSkip)
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	// shift.Measure runs the backbone itself: check its images as the
	// model's entry points do. It measures in float32, whatever the
	// run's precision: the report is the same on every CPU.
	images := func(yield func(*torch.Tensor, error) bool) {
		for x, err := range onDevice(ctx, at.inference(), loader) {
			if err == nil {
				err = m.checkInput(x)
			}
			if !yield(x, err) || err != nil {
				return
			}
		}
	}
	report, err := shift.Measure(ctx, m.Backbone, images, shiftSample)
	if err != nil {
		return nil, fmt.Errorf("measuring the BatchNorm shift: %w", err)
	}
	return report, nil
}

// onDevice yields the images of one pass of loader, each batch moved
// through the one place (placement.input); a batch is valid until the
// next.
func onDevice(ctx context.Context, at placement, loader *data.BatchLoader) func(yield func(*torch.Tensor, error) bool) {
	return func(yield func(*torch.Tensor, error) bool) {
		for x, err := range loader.Images(ctx, 0) {
			if err == nil {
				x, err = at.input(x)
			}
			if !yield(x, err) || err != nil {
				return
			}
		}
	}
}

// resolveStages sets plan's stages: the configured ones, with the
// freeze point recipe: auto chose (freeze, when not ""), the steps per
// epoch, which features each caches and its estimated time; and the
// run's budget (resolveMaxTime), returning the estimated seconds of the
// passes after the last stage, which fitStages fits the stages around
// once the plan is made.
func (r *run) resolveStages(plan *Plan, freeze string) (final float64, err error) {
	cfg := r.cfg
	steps := r.trainLoader.Len()
	if cfg.Train.StepsPerEpoch > 0 {
		steps = cfg.Train.StepsPerEpoch
	} else {
		r.decide(plan, "train.steps_per_epoch", fmt.Sprint(steps),
			fmt.Sprintf("one pass over %d training images in batches of %d", len(r.d.Train), cfg.Data.BatchSize), "")
	}
	for i, st := range cfg.Stages {
		ps := PlanStage{Name: st.Name, Epochs: st.Epochs, Freeze: st.Freeze, BackboneLRMult: st.BackboneLRMult,
			LR: cfg.Train.LR, WeightDecay: cfg.Train.WeightDecay, StepsPerEpoch: steps, Cache: "none"}
		if i > 0 && freeze != "" {
			ps.Freeze = freeze
		}
		if err := r.m.Freeze(ps.Freeze, cfg.Train.BNAffine); err != nil {
			return 0, fmt.Errorf("stages[%d].freeze: %w", i, err)
		}
		valid := r.cacheValid()
		switch mode := cfg.Train.CacheFeatures; {
		case mode == "on" && !valid:
			return 0, fmt.Errorf("train.cache_features: on, but stage %s trains the backbone or its BatchNorm statistics "+
				"(freeze: %s, train.batchnorm: %s, train.bn_affine: %s): its features change every step",
				ps.Name, ps.Freeze, plan.BatchNorm, cfg.Train.BNAffine)
		case mode == "off" || !valid:
		case cfg.Augment.Enabled:
			ps.Cache = "validation"
		default:
			ps.Cache = "training and validation"
		}
		if cfg.Train.CacheFeatures == "auto" {
			r.decide(plan, fmt.Sprintf("stages[%d].cache_features", i), ps.Cache, "features are fixed when the backbone and its "+
				"BatchNorm statistics are; training features only without augmentation", "")
		}
		path, why := r.backbonePath()
		r.decide(plan, fmt.Sprintf("stages[%d].backbone", i), path, why, fmt.Sprintf("stage %s: %s: %s", ps.Name, path, why))
		r.decideActivations(plan, i, &ps)
		if cfg.Recipe != "linear-probe" { // no stage trains
			if err := r.estimateStage(plan, i, &ps); err != nil {
				return 0, fmt.Errorf("stages[%d]: estimating its time: %w", i, err)
			}
		}
		plan.Stages = append(plan.Stages, ps)
	}
	return r.resolveMaxTime(plan)
}

// backbonePath says how the training steps of a stage frozen as the
// model now is run the backbone (see Model.UseFused), and why.
func (r *run) backbonePath() (path, why string) {
	groups := r.m.backboneGroups()
	span := func(from, to int) string {
		if from == to {
			return groups[from].Name
		}
		return groups[from].Name + ".." + groups[to].Name
	}
	n := r.m.FixedPrefix()
	fused := "run fused, channels-last, without autograd"
	if dt := r.at.frozenType(); dt != torch.Float32 {
		fused = "run fused, channels-last, in " + dt.String() + ", without autograd"
	}
	switch {
	case n == len(groups):
		return span(0, n-1) + " " + fused, "frozen with stored BatchNorm statistics"
	case n > 0:
		return fmt.Sprintf("%s %s; %s unfused with autograd", span(0, n-1), fused, span(n, len(groups)-1)),
			fmt.Sprintf("%s frozen with stored BatchNorm statistics, %s trains", span(0, n-1), groups[n].Name)
	case r.m.resnet == nil && r.m.BackboneFrozen():
		return "unfused, without autograd", "frozen; only a ResNet runs fused"
	case r.m.resnet == nil && !r.m.backboneParams()[r.m.groups[0].Value[0]].RequiresGrad():
		return "unfused, the frozen stages without autograd", "only a ResNet runs fused"
	case r.m.resnet == nil:
		return "unfused with autograd", "nothing in it is frozen"
	case r.m.BackboneFrozen():
		return "unfused, without autograd", fmt.Sprintf("frozen, but BatchNorm uses batch statistics (train.batchnorm: %s)", r.m.BNMode())
	case r.m.BNMode() == "train" || r.m.BNMode() == "legacy":
		return "unfused with autograd", fmt.Sprintf("BatchNorm uses batch statistics (train.batchnorm: %s)", r.m.BNMode())
	}
	return "unfused with autograd", "the stem trains"
}

// adaptBN re-estimates every backbone BatchNorm's running statistics over
// a sample of the training images (adaptSample, chosen by the seed) with
// evaluation transforms, as PyTorch's torch.optim.swa_utils.update_bn:
// statistics reset, cumulative average (momentum None), then frozen.
func (r *run) adaptBN(ctx context.Context, plan *Plan) error {
	sample := seededSample(r.cfg.Seed, 0xada, r.d.Train, adaptSample)
	which := "a sample fixed by the seed"
	if len(sample) == len(r.d.Train) {
		which = "all of them"
	}
	r.decide(plan, "adabn", fmt.Sprintf("%d training images", len(sample)), adaptReason,
		fmt.Sprintf("adapting BatchNorm statistics to %s, %s (AdaBN): %s", plural.Count(len(sample), "training image"), which, adaptReason))
	loader, err := r.loader(r.d.TrainSet, sample, fixedLoader)
	if err != nil {
		return err
	}
	defer loader.Close()
	return AdaptBN(ctx, r.m, onDevice(ctx, r.at.inference(), loader))
}

// baselines runs, once, on the first stage's frozen features: the linear
// probe (reported beside the result, the head's starting point with
// model.head.init: probe, or the whole run with recipe: linear-probe) and
// the quick search over the head's learning rate and weight decay.
func (r *run) baselines(ctx context.Context, plan *Plan, p stagePlan, res *resolution) error {
	cfg := r.cfg
	plan.HeadStart = "random"
	feats := res.feats
	initHead := cfg.Model.Head.Init == "probe" && len(cfg.Model.Head.Hidden) == 0 && cfg.Recipe != "linear-probe"
	wantProbe := cfg.Probe || cfg.Recipe == "linear-probe" || initHead
	wantSearch := cfg.Search == "quick" && feats.train != nil && cfg.Recipe != "linear-probe"
	if !wantProbe && !wantSearch {
		return nil
	}
	if !r.cacheValid() {
		if cfg.Recipe == "linear-probe" {
			return fmt.Errorf("recipe: linear-probe needs fixed backbone features: stage %s must freeze everything "+
				"(freeze: all) with train.batchnorm frozen, adapt or auto", p.Name)
		}
		r.info("linear probe, model.head.init: probe and search skipped: the backbone's features are not fixed in stage %s", p.Name)
		return nil
	}
	// Without the feature cache the probe computes its own, so that
	// train.cache_features stays a matter of speed, never of the result.
	val, valRows := feats.val, feats.valRows
	if val == nil {
		var err error
		if val, valRows, err = r.features(ctx, r.valLoader); err != nil {
			return fmt.Errorf("features for the linear probe: %w", err)
		}
		defer val.Free()
	}
	train, trainRows := feats.train, feats.trainRows
	if train == nil {
		fixed, err := r.loader(r.d.TrainSet, r.d.Train, keepAllLoader)
		if err != nil {
			return err
		}
		train, trainRows, err = r.features(ctx, fixed)
		fixed.Close()
		if err != nil {
			return fmt.Errorf("features for the linear probe: %w", err)
		}
		defer train.Free()
	}
	// The rows are the images the loaders decoded: under
	// data.on_bad_image: skip the labels follow them, so a skipped file
	// leaves the recipe as it would be without it.
	labels := labelsOf(r.d.TrainSet, trainRows)
	valLabels := labelsOf(r.d.ValSet, valRows)
	k := len(r.d.Classes)
	if wantProbe {
		pm, cv, err := probe.FitCV(train, labels, k, probe.CVOptions{Seed: cfg.Seed})
		if err != nil {
			return fmt.Errorf("linear probe: %w", err)
		}
		acc, err := pm.Accuracy(val, valLabels)
		if err != nil {
			return fmt.Errorf("linear probe: %w", err)
		}
		plan.ProbeAccuracy = &acc
		r.decide(plan, "probe", fmt.Sprintf("%.4f", acc), fmt.Sprintf("C = %g chosen by cross-validation (%.4f there)", pm.C, cv.BestAccuracy),
			fmt.Sprintf("linear probe baseline (C = %g chosen by cross-validation, %.4f there): validation accuracy %.4f", pm.C, cv.BestAccuracy, acc))
		if cfg.Recipe == "linear-probe" {
			plan.HeadStart = "probe"
			if err := r.headFromProbe(pm); err != nil {
				return err
			}
			res.probeEvals, err = r.evaluateCached(ctx, feats)
			return err
		}
		if initHead {
			if err := r.headFromProbe(pm); err != nil {
				return err
			}
			if res.probeEvals, err = r.evaluateCached(ctx, feats); err != nil {
				return err
			}
			plan.HeadStart = "probe"
			r.decide(plan, "model.head.init", "probe", "the head starts as the linear probe",
				"model.head.init: probe: the head starts as the linear probe")
			if cfg.ProbeFallback {
				if res.probeStart, err = cloneState(r.m); err != nil {
					return err
				}
			}
		}
	}
	if wantSearch {
		found, err := probe.Search(ctx, train, labels, k, probe.SearchOptions{
			Seed: cfg.Seed, BatchSize: cfg.Data.BatchSize, LabelSmoothing: cfg.Train.LabelSmoothing,
			NewHead: func(in, classes int64) (nn.Layer, error) { return NewHead(cfg.Model.Head, in, classes) },
		})
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		res.artifacts = append(res.artifacts, Artifact{Name: "search.json", Value: found})
		for i := range plan.Stages {
			plan.Stages[i].LR, plan.Stages[i].WeightDecay = found.Best.LR, found.Best.WeightDecay
		}
		r.decide(plan, "train.lr", fmt.Sprint(found.Best.LR), fmt.Sprintf("search: quick, cross-validated accuracy %.4f", found.Best.Accuracy),
			fmt.Sprintf("search: quick → train.lr %g, train.weight_decay %g (cross-validated accuracy %.4f; results in search.json)",
				found.Best.LR, found.Best.WeightDecay, found.Best.Accuracy))
		r.decide(plan, "train.weight_decay", fmt.Sprint(found.Best.WeightDecay), "search: quick", "")
	}
	return nil
}

// evaluateCached evaluates the model as it is on the stage's cached
// features of the validation images and the train sample: the head
// alone runs. It returns nil when they are not cached.
func (r *run) evaluateCached(ctx context.Context, feats *stageFeatures) (*evaluations, error) {
	if feats.val == nil || feats.trainEval == nil || feats.acts != nil {
		return nil, nil
	}
	val, err := r.evaluate(ctx, r.valLoader, feats.val, nil)
	if err != nil {
		return nil, fmt.Errorf("validation of the probe's model: %w", err)
	}
	train, err := r.evaluate(ctx, r.trainEvalLoader, feats.trainEval, r.d.TrainSet)
	if err != nil {
		return nil, fmt.Errorf("train accuracy of the probe's model: %w", err)
	}
	return &evaluations{val, train}, nil
}

func labelsOf(set interface{ Labels() []int }, indices []int) []int {
	all := set.Labels()
	out := make([]int, len(indices))
	for i, k := range indices {
		out[i] = all[k]
	}
	return out
}

// headFromProbe makes the head the probe's logistic regression.
func (r *run) headFromProbe(pm *probe.Model) error {
	var lin *nn.Linear
	for _, c := range r.m.Head.Children() {
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

// checkData refuses to resume plan when the data changed since the
// checkpoint at path, unless Options.AllowDataChange.
func (r *run) checkData(plan *Plan, path string) error {
	now, err := fingerprint(r.d)
	if err != nil {
		return err
	}
	diff := plan.Data.diff(now)
	switch {
	case diff == "":
		return nil
	case r.opts.AllowDataChange:
		r.warn("resuming on changed data (allowed): %s", diff)
		return nil
	}
	return fmt.Errorf("%s: the data changed: %s; resume on the same data, or allow the change", path, diff)
}

// MeasureShift measures, for cfg's backbone and weights, how far the
// images of dir (a folder with one subfolder per class) are from the
// stored BatchNorm statistics, on a seeded sample of up to 256 images. It
// also returns how many images dir holds.
func MeasureShift(ctx context.Context, cfg Config, dir string, hub *models.Hub) (_ *shift.Report, _ int, err error) {
	defer printable.Escape(&err)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	set, err := data.ImageFolder(dir)
	if err != nil {
		return nil, 0, err
	}
	if cfg.Model.Weights == "none" {
		return nil, 0, fmt.Errorf("model.weights: none: there are no stored statistics to compare with")
	}
	if !models.HasBatchNorm(cfg.Model.Arch) {
		return nil, 0, fmt.Errorf("model.arch: %s has no BatchNorm layers: LayerNorm normalises each image by itself, there are no stored statistics to compare with", cfg.Model.Arch)
	}
	m, err := buildModel(ctx, cfg, int64(len(set.Classes)), hub, func(string, ...any) {})
	if err != nil {
		return nil, 0, err
	}
	defer m.Close()
	d := &Data{TrainSet: set, Train: allIndices(len(set.Samples))}
	if d.Normalize, _, err = normalization(cfg); err != nil {
		return nil, 0, err
	}
	d.EvalResize, _ = evalResize(cfg, set, d.Train)
	if err := d.pipelines(cfg); err != nil {
		return nil, 0, err
	}
	report, err := measureShift(ctx, cfg, modelPlacement(m), m, d, func(string, ...any) {}, nil)
	if err != nil {
		return nil, 0, err
	}
	return report, len(set.Samples), nil
}
