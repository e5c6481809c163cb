package finetune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/finetune-go/finetune/finetune/shift"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/torch/optim"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/finetune-go/finetune/vision/models"
)

// ErrInterrupted is returned (wrapped) when the context is cancelled
// during training: the step in progress finished and a checkpoint to
// resume from was written.
var ErrInterrupted = errors.New("training interrupted")

// ErrNotFinite is returned (wrapped) when the loss becomes NaN or
// infinite; the last good checkpoint stays on disk.
var ErrNotFinite = errors.New("loss is not finite")

// Options are a training run's hooks; the zero value is valid.
type Options struct {
	// Observer receives progress events; nil ignores them.
	Observer func(Event)
	// Recorder keeps the run's record (package runfolder writes it to a
	// folder); nil keeps none: no file is written.
	Recorder Recorder
	// Resume names a checkpoint (last.safetensors of an interrupted run)
	// to continue from.
	Resume string
	// Hub finds pretrained weights; nil uses torch hub's cache.
	Hub *models.Hub
	// AllowDataChange lets a resumed run go on when the training data
	// differ from those the checkpoint recorded.
	AllowDataChange bool
}

// Evaluation is a model's result on one dataset.
type Evaluation struct {
	Loss      float64    `json:"loss"`
	Accuracy  float64    `json:"accuracy"`
	Confusion *Confusion `json:"confusion"`
}

// Result is what a run produced.
type Result struct {
	Classes []string
	History []EpochMetrics
	// Best is the epoch whose weights the model ends with.
	Best EpochMetrics
	Val  *Evaluation
	Test *Evaluation
	// Checkpoints written at the end, with their sizes.
	Checkpoints []CheckpointFile
	HeadParams  int64
	Seconds     float64
	// Cached says how the head's inputs were computed.
	Cached string
	Model  *Model
	Folds  []FoldResult
	// Skipped lists images left out under data.on_bad_image: skip.
	Skipped []data.SkippedImage
	// ProbeAccuracy is the linear-probe baseline's validation accuracy,
	// when it ran.
	ProbeAccuracy *float64
	// EndedWithProbe says the model is the probe's, which beat the best
	// epoch on validation (probe_fallback); Best is still that epoch.
	EndedWithProbe bool
	// BatchNorm is the BatchNorm mode the run used (auto resolved).
	BatchNorm string
}

// Train runs cfg: it builds the model, trains it stage by stage and
// writes metrics and checkpoints to cfg.Output.Dir. With cv.folds set it
// runs cross-validation instead (see CrossValidate).
func Train(ctx context.Context, cfg Config, opts Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CV.Folds > 0 {
		return CrossValidate(ctx, cfg, opts)
	}
	d, err := OpenData(cfg)
	if err != nil {
		return nil, err
	}
	return trainOn(ctx, cfg, opts, d, -1)
}

// trainOn runs one training (fold is -1 outside cross-validation).
func trainOn(ctx context.Context, cfg Config, opts Options, d *Data, fold int) (*Result, error) {
	// libtorch keeps per-thread state, OpenMP's worker team included: a
	// training loop that hops OS threads makes new teams and runs slowly.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	tr := &trainer{cfg: cfg, opts: opts, d: d, fold: fold, primary: PrimaryProcess()}
	if err := tr.setup(ctx); err != nil {
		tr.close()
		return nil, err
	}
	defer tr.close()
	if err := tr.run(ctx); err != nil {
		return nil, err
	}
	res, err := tr.finish(ctx)
	if err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

type trainer struct {
	cfg  Config
	opts Options
	d    *Data
	fold int
	at   placement
	m    *Model
	gen  *torch.Generator
	log  *runLog
	// dp is the data-parallel group (nil when training alone); only the
	// primary process writes files and reports progress.
	dp      *dataParallel
	primary bool

	trainLoader, valLoader *data.BatchLoader
	classWeights           *torch.Tensor

	state trainState
	best  []nn.Named[*torch.Tensor]
	// probeStart is the whole model as the probe made it, before any
	// training: what probe_fallback ends with. Whole, because later
	// stages train layers the first one kept frozen.
	probeStart []nn.Named[*torch.Tensor]
	opt        optim.Optimizer
	// baseLR is each optimizer group's learning rate before the schedule.
	baseLR []float64
	cached string
	// shiftReport is the BatchNorm shift measured for auto settings.
	shiftReport *shift.Report
	// pendingOptState is a resumed optimizer state, loaded once the
	// stage's optimizer exists.
	pendingOptState *optim.State
}

// trainState is what a resumed run needs besides weights and optimizer.
type trainState struct {
	Stage       int             `json:"stage"`
	Epoch       int             `json:"epoch"`         // epochs finished in the stage
	StepInEpoch int             `json:"step_in_epoch"` // steps finished in the epoch in progress
	Step        int             `json:"step"`          // steps finished in the stage
	BestValue   float64         `json:"best_value"`
	HaveBest    bool            `json:"have_best"`
	SinceBest   int             `json:"since_best"`
	StageBest   float64         `json:"stage_best"`
	StageHave   bool            `json:"stage_have"`
	Best        EpochMetrics    `json:"best_epoch"`
	History     []EpochMetrics  `json:"history"`
	Trained     map[string]bool `json:"trained"`
	Adapted     bool            `json:"adapted"`
	Auto        resolved        `json:"auto"`
	Partial     partialEpoch    `json:"partial"`
}

// partialEpoch accumulates the training metrics of the epoch in
// progress, so an epoch interrupted and resumed reports as one.
type partialEpoch struct {
	LossSum float64 `json:"loss_sum"`
	Correct int64   `json:"correct"`
	Seen    int64   `json:"seen"`
	Seconds float64 `json:"seconds"`
}

func (tr *trainer) emit(e Event) {
	if !tr.primary && e.Kind != EventWarning {
		return
	}
	e.Fold = tr.fold
	if tr.opts.Observer != nil {
		tr.opts.Observer(e)
	}
}

func (tr *trainer) info(format string, args ...any) {
	tr.emit(Event{Kind: EventInfo, Message: fmt.Sprintf(format, args...)})
}

func (tr *trainer) warn(format string, args ...any) {
	tr.emit(Event{Kind: EventWarning, Message: fmt.Sprintf(format, args...)})
}

func (tr *trainer) setup(ctx context.Context) error {
	cfg := tr.cfg
	var msg string
	var err error
	if tr.at, msg, err = newPlacement(cfg); err != nil {
		return err
	}
	if msg != "" {
		tr.info("%s", msg)
	}
	if tr.dp, tr.at.device, err = joinDataParallel(ctx, tr.at.device); err != nil {
		return err
	}
	if tr.dp != nil {
		tr.at.shard = tr.dp.shard
		tr.info("data-parallel: %v", tr.dp)
	}
	if tr.primary {
		if err := os.MkdirAll(tr.runDir(), 0o755); err != nil {
			return fmt.Errorf("output.dir: %w", err)
		}
		if tr.log, err = openRunLog(tr.runDir(), tr.opts.Resume != ""); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tr.runDir(), "config.yaml"), []byte(ConfigYAML(cfg)), 0o644); err != nil {
			return fmt.Errorf("output.dir: %w", err)
		}
	}
	torch.ManualSeed(cfg.Seed)
	if tr.gen, err = torch.NewGenerator(cfg.Seed); err != nil {
		return err
	}
	if tr.m, err = buildModel(ctx, cfg, int64(len(tr.d.Classes)), tr.opts.Hub, tr.info); err != nil {
		return err
	}
	_ = nn.Walk(tr.m.Head, func(_ string, x nn.Module) error {
		if dr, ok := x.(*nn.Dropout); ok {
			dr.Generator = tr.gen
		}
		return nil
	})
	tr.reportSizes()
	if err := tr.at.place(tr.m); err != nil {
		return err
	}
	tr.info("computing on %v", tr.at)
	if tr.trainLoader, err = tr.d.loader(cfg, tr.at, tr.d.TrainSet, tr.d.Train, trainLoader, tr.loaderLog); err != nil {
		return fmt.Errorf("data.train: %w", err)
	}
	if tr.valLoader, err = tr.d.loader(cfg, tr.at, tr.d.ValSet, tr.d.Val, fixedLoader, tr.loaderLog); err != nil {
		return fmt.Errorf("data.val: %w", err)
	}
	if cfg.Train.ClassWeights == "balanced" {
		w := make([]float32, len(tr.d.ClassWeights))
		for i, v := range tr.d.ClassWeights {
			w[i] = float32(v)
		}
		cw, err := torch.FromSlice(w)
		if err != nil {
			return err
		}
		if tr.classWeights, err = cw.ToDevice(tr.at.device); err != nil {
			return err
		}
		tr.classWeights.Keep()
	}
	tr.state.Trained = map[string]bool{}
	if tr.opts.Resume != "" {
		if err := tr.resume(tr.opts.Resume); err != nil {
			return err
		}
	} else if err := tr.resolveAuto(ctx); err != nil {
		return err
	}
	return tr.dp.broadcastModel(tr.m)
}

func (tr *trainer) loaderLog(format string, args ...any) { tr.warn(format, args...) }

func (tr *trainer) runDir() string {
	if tr.fold >= 0 {
		return filepath.Join(tr.cfg.Output.Dir, fmt.Sprintf("fold%d", tr.fold+1))
	}
	return tr.cfg.Output.Dir
}

func (tr *trainer) close() {
	if tr.trainLoader != nil {
		tr.trainLoader.Close()
	}
	if tr.valLoader != nil {
		tr.valLoader.Close()
	}
	if tr.log != nil {
		tr.log.Close()
	}
	tr.dp.free()
	for _, b := range tr.best {
		b.Value.Free()
	}
	for _, b := range tr.probeStart {
		b.Value.Free()
	}
}

// buildModel makes the model of cfg and loads the backbone's weights.
func buildModel(ctx context.Context, cfg Config, numClasses int64, hub *models.Hub, info func(string, ...any)) (*Model, error) {
	torch.ManualSeed(cfg.Seed)
	m, err := NewModel(cfg.Model.Arch, cfg.Model.Head, numClasses, cfg.Data.ImageSize)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if cfg.Model.Weights != "none" {
		r, err := models.LoadWeights(ctx, m.Backbone, cfg.Model.Weights, hub)
		if err != nil {
			nn.Free(m)
			return nil, fmt.Errorf("model.weights: %w", err)
		}
		info("backbone %s: %d tensors loaded from %s", cfg.Model.Arch, len(r.Loaded), cfg.Model.Weights)
	}
	if err := m.SetBNMode(ProvisionalBN(cfg)); err != nil {
		return nil, err
	}
	return m, nil
}

func (tr *trainer) reportSizes() {
	head, _ := nn.CountParameters(tr.m.Head)
	total, _ := nn.CountParameters(tr.m)
	fs := tr.m.FeatureShape
	in := pooledWidth(tr.cfg.Model.Head.Pooling, fs[0], fs[1], fs[2])
	tr.info("head: %s pooling → %d features → %v → %d classes: %s parameters (%s as float32); model total %s",
		tr.cfg.Model.Head.Pooling, in, tr.cfg.Model.Head.Hidden, len(tr.d.Classes), nn.Thousands(head),
		nn.Bytes(head*4), nn.Thousands(total))
	trained := map[string]bool{}
	for _, st := range tr.cfg.Stages {
		if tr.m.Freeze(st.Freeze, tr.cfg.Train.BNAffine) == nil {
			for _, e := range nn.Trainable(tr.m) {
				trained[e.Name] = true
			}
		}
	}
	if full, delta, err := CheckpointSizes(tr.m, trained); err == nil {
		tr.info("checkpoints: %s full, %s delta (head, BatchNorm statistics and the layers the recipe unfreezes)",
			nn.Bytes(full), nn.Bytes(delta))
	}
	if head > 10_000_000 {
		tr.warn("the head has %s parameters (%s, %s with Adam's state): a head this large memorises a small dataset; "+
			"model.head.pooling: avg and one small layer is the usual cure", nn.Thousands(head), nn.Bytes(head*4), nn.Bytes(head*12))
	}
}

// stagePlan is a stage's optimisation as configured.
type stagePlan struct {
	Stage
	index         int
	stepsPerEpoch int
	cached        bool
}

func (tr *trainer) plan(i int) stagePlan {
	st := tr.cfg.Stages[i]
	p := stagePlan{Stage: st, index: i, stepsPerEpoch: tr.trainLoader.Len()}
	if s := tr.cfg.Train.StepsPerEpoch; s > 0 {
		p.stepsPerEpoch = s
	}
	return p
}

func (tr *trainer) run(ctx context.Context) error {
	for tr.state.Stage < len(tr.cfg.Stages) {
		p := tr.plan(tr.state.Stage)
		if err := tr.runStage(ctx, p); err != nil {
			// Cancellation may surface anywhere (a loader, a validation
			// pass); the state still describes the last finished step.
			if ctx.Err() != nil && !errors.Is(err, ErrInterrupted) {
				return tr.interrupt(p, ctx.Err())
			}
			return err
		}
		if tr.cfg.Recipe == "linear-probe" {
			break
		}
		tr.state.Stage++
		tr.state.Epoch, tr.state.Step, tr.state.StepInEpoch = 0, 0, 0
		tr.state.StageHave, tr.state.SinceBest = false, 0
	}
	return tr.fallBackToProbe()
}

// fallBackToProbe ends the run with the probe's model when the probe
// did better on validation than the best epoch (probe_fallback).
// Accuracy decides, not the early-stopping metric: the probe's L2
// penalty, chosen for accuracy, leaves its probabilities less confident
// than a trained head's, so its loss says little about how often it is
// right.
func (tr *trainer) fallBackToProbe() error {
	a := &tr.state.Auto
	if tr.probeStart == nil || !a.HaveProbe || !tr.state.HaveBest || a.Probe <= tr.state.Best.ValAccuracy {
		return nil
	}
	if _, err := nn.LoadStateDict(tr.m, tr.probeStart, nn.LoadOptions{}); err != nil {
		return fmt.Errorf("probe_fallback: %w", err)
	}
	a.FellBack = true
	tr.info("probe_fallback: the linear probe's validation accuracy %.4f beats the best epoch's %.4f: the run ends with the probe's model",
		a.Probe, tr.state.Best.ValAccuracy)
	return nil
}

// keepProbeStart copies the whole model as the probe made it, or as it
// was loaded: a resumed run overlays the probe's entries of the
// checkpoint, everything else being still the pretrained weights then.
func (tr *trainer) keepProbeStart() error {
	var err error
	tr.probeStart, err = cloneState(tr.m)
	return err
}

// cloneState copies every entry of m's state dict into a tensor of its
// own that outlives any scope; on an error nothing is left allocated.
func cloneState(m nn.Module) ([]nn.Named[*torch.Tensor], error) {
	var out []nn.Named[*torch.Tensor]
	for _, e := range nn.StateDict(m) {
		c, err := e.Value.Detach()
		if err == nil {
			c, err = c.Clone()
		}
		if err != nil {
			for _, o := range out {
				o.Value.Free()
			}
			return nil, err
		}
		out = append(out, nn.Named[*torch.Tensor]{Name: e.Name, Value: c.Keep()})
	}
	return out, nil
}

func (tr *trainer) prepareStage(ctx context.Context, p stagePlan) error {
	cfg := tr.cfg
	if err := tr.m.Freeze(p.Freeze, cfg.Train.BNAffine); err != nil {
		return fmt.Errorf("stages[%d].freeze: %w", p.index, err)
	}
	for _, e := range nn.Trainable(tr.m) {
		tr.state.Trained[e.Name] = true
	}
	if cfg.Train.BatchNorm == "adapt" && !tr.state.Adapted {
		tr.info("adapting BatchNorm statistics to the training images (AdaBN)")
		if err := tr.adaptBN(ctx); err != nil {
			return err
		}
		tr.state.Adapted = true
	}
	var err error
	if tr.opt, tr.baseLR, err = newOptimizer(cfg.Train, tr.m, p.BackboneLRMult); err != nil {
		return fmt.Errorf("stages[%d]: %w", p.index, err)
	}
	total, trainable := nn.CountParameters(tr.m)
	tr.emit(Event{Kind: EventStage, Stage: p.Name, Epochs: p.Epochs, Message: fmt.Sprintf(
		"stage %s: %d epochs at most, frozen up to %s, %s of %s parameters trainable, BatchNorm %s, %d steps per epoch",
		p.Name, p.Epochs, p.Freeze, nn.Thousands(trainable), nn.Thousands(total), cfg.Train.BatchNorm, p.stepsPerEpoch)})
	return nil
}

// adaptBN re-estimates every backbone BatchNorm's running statistics over
// the training images with evaluation transforms, as PyTorch's
// torch.optim.swa_utils.update_bn: statistics reset, cumulative average
// (momentum None), then frozen.
func (tr *trainer) adaptBN(ctx context.Context) error {
	loader, err := tr.d.loader(tr.cfg, tr.at, tr.d.TrainSet, tr.d.Train, fixedLoader, tr.loaderLog)
	if err != nil {
		return err
	}
	defer loader.Close()
	return AdaptBN(ctx, tr.m, func(yield func(*torch.Tensor, error) bool) {
		for b, err := range loader.Epoch(ctx, 0) {
			if err != nil {
				yield(nil, err)
				return
			}
			ok := yield(b.Images, nil)
			b.Free()
			if !ok {
				return
			}
		}
	})
}

// AdaptBN resets the running statistics of every BatchNorm of m's backbone
// and re-estimates them as cumulative averages over the batches of images,
// in a no-grad pass; the layers are left in m's BatchNorm mode (frozen
// for "adapt").
func AdaptBN(ctx context.Context, m *Model, images func(yield func(*torch.Tensor, error) bool)) error {
	bns := m.backboneBNs()
	saved := make([]*float64, len(bns))
	err := torch.NoGrad(func() error {
		for i, bn := range bns {
			b := bn.Value
			saved[i] = b.Config.Momentum
			b.Config.Momentum = nil
			for _, name := range []string{"running_mean", "num_batches_tracked"} {
				if err := b.Buffer(name).Zero_(); err != nil {
					return err
				}
			}
			if err := b.Buffer("running_var").Fill_(1); err != nil {
				return err
			}
		}
		nn.Train(m.Backbone, false)
		for _, bn := range bns {
			bn.Value.SetTraining(true)
			bn.Value.Config.TrackRunningStats = true
		}
		for x, err := range images {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			s := torch.NewScope()
			_, err := m.Backbone.Features(x, "layer4")
			s.Close()
			if err != nil {
				return fmt.Errorf("adapting BatchNorm: %w", err)
			}
		}
		return nil
	})
	for i, bn := range bns {
		bn.Value.Config.Momentum = saved[i]
	}
	m.Train(m.Training())
	return err
}

// newOptimizer groups m's trainable parameters: head and backbone (the
// latter at lrMult times the learning rate), each split into those that
// take weight decay and BatchNorm parameters and biases, which do not.
func newOptimizer(c TrainConfig, m *Model, lrMult float64) (optim.Optimizer, []float64, error) {
	noDecay := map[*torch.Tensor]bool{}
	_ = nn.Walk(m, func(_ string, x nn.Module) error {
		for _, p := range x.Base().Parameters() {
			if _, isBN := x.(*nn.BatchNorm); isBN || p.Name == "bias" {
				noDecay[p.Value] = true
			}
		}
		return nil
	})
	var groups []optim.ParamGroup
	var lrs []float64
	for _, part := range []struct {
		mod nn.Module
		lr  float64
	}{{m.Head, c.LR}, {m.Backbone, c.LR * lrMult}} {
		var decay, plain []*torch.Tensor
		for _, p := range nn.Trainable(part.mod) {
			if noDecay[p.Value] {
				plain = append(plain, p.Value)
			} else {
				decay = append(decay, p.Value)
			}
		}
		for _, g := range []struct {
			params []*torch.Tensor
			wd     float64
		}{{decay, c.WeightDecay}, {plain, 0}} {
			if len(g.params) == 0 || part.lr == 0 {
				continue
			}
			var pg optim.ParamGroup
			switch c.Optimizer {
			case "adamw":
				pg = optim.AdamWGroup(g.params...)
			case "adam":
				pg = optim.AdamGroup(g.params...)
			default:
				pg = optim.ParamGroup{Params: g.params, Momentum: c.Momentum, Nesterov: c.Nesterov}
			}
			pg.LR, pg.WeightDecay = part.lr, g.wd
			groups = append(groups, pg)
			lrs = append(lrs, part.lr)
		}
	}
	if len(groups) == 0 {
		return nil, nil, errors.New("nothing to train: every parameter is frozen")
	}
	var opt optim.Optimizer
	var err error
	switch c.Optimizer {
	case "adamw":
		opt, err = optim.NewAdamW(groups...)
	case "adam":
		opt, err = optim.NewAdam(groups...)
	default:
		opt, err = optim.NewSGD(groups...)
	}
	return opt, lrs, err
}

// runStage trains one stage of the recipe until its epochs are done or
// early stopping ends it.
func (tr *trainer) runStage(ctx context.Context, p stagePlan) error {
	if err := tr.prepareStage(ctx, p); err != nil {
		return err
	}
	if tr.pendingOptState != nil {
		if err := tr.opt.LoadState(tr.pendingOptState); err != nil {
			return fmt.Errorf("resume: optimizer: %w", err)
		}
		tr.pendingOptState.Free()
		tr.pendingOptState = nil
	}
	feats, err := tr.stageFeatures(ctx, p)
	if err != nil {
		return err
	}
	defer feats.free(tr.m)
	if p.index == 0 && !tr.state.Auto.Baselines {
		if err := tr.baselines(ctx, p, feats); err != nil {
			return err
		}
		tr.state.Auto.Baselines = true
	}
	if tr.cfg.Recipe == "linear-probe" {
		tr.info("recipe: linear-probe: the probe is the model; no stage trains")
		return nil
	}
	total := p.Epochs * p.stepsPerEpoch
	for tr.state.Epoch < p.Epochs {
		if err := tr.dp.interrupted(ctx); err != nil {
			return tr.interrupt(p, err)
		}
		em, err := tr.trainEpoch(ctx, p, feats, total)
		if err != nil {
			return err
		}
		if err := tr.dp.syncBuffers(tr.m); err != nil {
			return err
		}
		val, err := tr.evaluate(ctx, tr.valLoader, feats.val, nil)
		if err != nil {
			return fmt.Errorf("validation: %w", err)
		}
		if err := tr.dp.agree(&val.Loss, &val.Accuracy); err != nil {
			return err
		}
		em.ValLoss, em.ValAccuracy = val.Loss, val.Accuracy
		em.Gap = em.TrainAccuracy - em.ValAccuracy
		tr.state.Epoch++
		tr.state.StepInEpoch = 0
		tr.state.Partial = partialEpoch{}
		stop, err := tr.endEpoch(p, &em)
		if err != nil {
			return err
		}
		if stop {
			tr.info("stage %s: early stop after epoch %d: %s has not improved for %d epochs",
				p.Name, em.Epoch, tr.cfg.Train.EarlyStopping.Metric, tr.state.SinceBest)
			break
		}
	}
	return tr.restoreBest()
}

// stageFeatures holds backbone features that stay valid for a stage.
// features runs the frozen backbone over every batch of loader and keeps
// the head's inputs, in loader order.
// trainBatch is one training batch: images (or cached features) and
// labels.
// epochBatches yields the training batches of one epoch of stage p,
// starting after the batches already done.
// reseedEpoch makes the epoch's random draws (dropout masks, mixup) a
// function of the seed and the epoch, so a resumed run draws the same.
// step runs one optimisation step and returns the batch's mean loss and
// its number of correct predictions.
// clipGradNorm scales the gradients so their global L2 norm is at most
// maxNorm, as torch.nn.utils.clip_grad_norm_.
// evaluate runs the model in evaluation mode over loader (or its cached
// features) and returns the plain cross entropy, accuracy and confusion.
func (tr *trainer) metricValue(em EpochMetrics) (v float64, higherIsBetter bool) {
	if tr.cfg.Train.EarlyStopping.Metric == "val_accuracy" {
		return em.ValAccuracy, true
	}
	return em.ValLoss, false
}

func (tr *trainer) improves(v, best float64, higher bool) bool {
	d := tr.cfg.Train.EarlyStopping.MinDelta
	if higher {
		return v > best+d
	}
	return v < best-d
}

// endEpoch records the epoch, keeps the best weights so far and writes
// the resume checkpoint; it reports whether the stage should stop early.
// Patience counts within the stage; the weights kept are the best of the
// whole run, so a later stage that does worse ends with the earlier best.
func (tr *trainer) endEpoch(p stagePlan, em *EpochMetrics) (bool, error) {
	v, higher := tr.metricValue(*em)
	if !tr.state.StageHave || tr.improves(v, tr.state.StageBest, higher) {
		tr.state.StageBest, tr.state.StageHave, tr.state.SinceBest = v, true, 0
	} else {
		tr.state.SinceBest++
	}
	em.Fold = tr.fold
	em.GlobalEpoch = len(tr.state.History) + 1
	if !tr.state.HaveBest || tr.improves(v, tr.state.BestValue, higher) {
		tr.state.BestValue, tr.state.HaveBest = v, true
		em.Best = true
		tr.state.Best = *em
		if err := tr.keepBest(); err != nil {
			return false, err
		}
	}
	tr.state.History = append(tr.state.History, *em)
	tr.emit(Event{Kind: EventEpoch, Stage: p.Name, Epoch: em.Epoch, Metrics: em})
	if tr.primary {
		if err := tr.log.Write(*em); err != nil {
			return false, err
		}
		if err := tr.writeResume(); err != nil {
			return false, err
		}
	}
	pat := tr.cfg.Train.EarlyStopping.Patience
	return pat > 0 && tr.state.SinceBest >= pat, nil
}

// keepBest copies the current weights as the stage's best.
func (tr *trainer) keepBest() error {
	if tr.best == nil {
		var err error
		tr.best, err = cloneState(tr.m)
		return err
	}
	return torch.NoGrad(func() error {
		for i, e := range nn.StateDict(tr.m) {
			if err := tr.best[i].Value.Copy_(e.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

// restoreBest loads the stage's best weights into the model.
func (tr *trainer) restoreBest() error {
	if tr.best == nil {
		return nil
	}
	_, err := nn.LoadStateDict(tr.m, tr.best, nn.LoadOptions{})
	return err
}

// interrupt writes a resumable checkpoint for the step just finished.
func (tr *trainer) interrupt(p stagePlan, cause error) error {
	if !tr.primary {
		return fmt.Errorf("%w: %w", ErrInterrupted, cause)
	}
	if err := tr.writeResume(); err != nil {
		return fmt.Errorf("%w; and writing the checkpoint failed: %v", cause, err)
	}
	path := filepath.Join(tr.runDir(), lastCheckpoint)
	return fmt.Errorf("%w in stage %s, epoch %d after step %d; resume with --resume %s: %w",
		ErrInterrupted, p.Name, tr.state.Epoch+1, tr.state.StepInEpoch, path, cause)
}

func (tr *trainer) finish(ctx context.Context) (*Result, error) {
	res := &Result{Classes: tr.d.Classes, History: tr.state.History, Best: tr.state.Best, Model: tr.m, Cached: tr.cached,
		BatchNorm: tr.cfg.Train.BatchNorm}
	if tr.state.Auto.HaveProbe {
		p := tr.state.Auto.Probe
		res.ProbeAccuracy = &p
	}
	res.EndedWithProbe = tr.state.Auto.FellBack
	res.HeadParams, _ = nn.CountParameters(tr.m.Head)
	var err error
	if res.Val, err = tr.evaluate(ctx, tr.valLoader, nil, tr.d.ValSet); err != nil {
		return nil, fmt.Errorf("final validation: %w", err)
	}
	if tr.d.TestSet != nil {
		test, err := tr.d.loader(tr.cfg, tr.at, tr.d.TestSet, nil, fixedLoader, tr.loaderLog)
		if err != nil {
			return nil, fmt.Errorf("data.test: %w", err)
		}
		res.Test, err = tr.evaluate(ctx, test, nil, tr.d.TestSet)
		test.Close()
		if err != nil {
			return nil, fmt.Errorf("test: %w", err)
		}
	}
	res.Skipped = append(tr.trainLoader.Skipped(), tr.valLoader.Skipped()...)
	if tr.primary {
		if res.Checkpoints, err = tr.writeFinal(res); err != nil {
			return nil, err
		}
		if err := writeJSON(filepath.Join(tr.runDir(), "result.json"), res.Summary()); err != nil {
			return nil, err
		}
	}
	tr.m = nil // the caller owns it now
	return res, nil
}
