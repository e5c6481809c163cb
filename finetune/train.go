package finetune

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/finetune-go/finetune/internal/printable"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/torch/optim"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/finetune-go/finetune/vision/models"
)

// ErrInterrupted is returned (wrapped) when the context is cancelled
// during training: the step in progress finished and a checkpoint to
// resume from went to the Recorder.
var ErrInterrupted = errors.New("training interrupted")

// ErrNotFinite is returned (wrapped) when the loss becomes NaN or
// infinite; the last good checkpoint is the Recorder's last one.
var ErrNotFinite = errors.New("loss is not finite")

// Options are a training run's hooks; the zero value is valid.
type Options struct {
	// Observer receives the progress events (info, warning, stage, step,
	// epoch, fold), for display; nil ignores them.
	Observer func(Event)
	// Recorder keeps the run's record (package runfolder writes it to a
	// folder); nil keeps none: the engine writes no file itself. It
	// receives every event, progress and record kinds (run start,
	// artifacts, checkpoints, run end), in order.
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
	// Skipped lists the images left out under data.on_bad_image: skip
	// (Evaluate only; a run lists its own in Result.Skipped).
	Skipped []data.SkippedImage `json:"-"`
	// Images are the evaluated images' results, in the order of the
	// dataset: the rows of predictions.csv.
	Images []ImageResult `json:"-"`
}

// Result is what a run produced.
type Result struct {
	Classes []string
	History []EpochMetrics
	// Best is the best epoch by train.early_stopping.metric: the model
	// ends with its weights, unless EndedWithProbe.
	Best EpochMetrics
	Val  *Evaluation
	Test *Evaluation
	// TrainEval is Model on the training images each epoch's train
	// accuracy is measured on (Plan.TrainSample), in evaluation mode.
	TrainEval *Evaluation
	// Checkpoints the Recorder wrote at the end, with their sizes.
	Checkpoints []CheckpointFile
	HeadParams  int64
	Seconds     float64
	// Cached says how the head's inputs were computed.
	Cached string
	// Model is the trained model, in evaluation mode. The caller owns
	// it and releases its native memory with Model.Close; it is nil in
	// a cross-validation's summary (each fold's model is freed).
	Model *Model
	// Meta describes Model as its full checkpoint does: configuration,
	// classes, normalisation, final metrics. Predict and PredictImage
	// take it, so a trained model classifies images without a
	// checkpoint file.
	Meta  Meta
	Folds []FoldResult
	// Skipped lists images left out under data.on_bad_image: skip.
	Skipped []data.SkippedImage
	// ProbeAccuracy is the linear-probe baseline's validation accuracy,
	// when it ran.
	ProbeAccuracy *float64
	// EndedWithProbe says the model is the probe's, which no epoch beat
	// on train.early_stopping.metric (probe_fallback); Best is still the
	// best epoch.
	EndedWithProbe bool
	// BatchNorm is the BatchNorm mode the run used (auto resolved).
	BatchNorm string
	// Stops lists the stages that stopped before their last epoch, and
	// why.
	Stops []StageStop
	// Plan is what the run trained (nil for a cross-validation's
	// summary: each fold has its own).
	Plan *Plan
}

// Train runs cfg: it resolves the Plan, builds the model, trains it
// stage by stage and reports the run's record to opts.Recorder. With
// cv.folds set it runs cross-validation instead (see CrossValidate).
func Train(ctx context.Context, cfg Config, opts Options) (_ *Result, err error) {
	defer printable.Escape(&err)
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
	r := &run{cfg: cfg, opts: opts, d: d, ev: newEmitter(opts, fold), start: now()}
	defer r.close()
	var point *resumePoint
	plan := &Plan{}
	if opts.Resume != "" {
		var err error
		if point, err = readResume(opts.Resume, cfg); err != nil {
			return nil, err
		}
		plan = point.plan
		if err := r.checkData(plan, opts.Resume); err != nil {
			return nil, err
		}
	}
	if err := r.setup(ctx, plan, point == nil); err != nil {
		return nil, err
	}
	lp := &loop{run: r, plan: plan, state: trainState{Trained: map[string]bool{}}}
	defer lp.close()
	var artifacts []Artifact
	if point != nil {
		if err := lp.restore(point); err != nil {
			return nil, err
		}
	} else {
		res, err := r.resolve(ctx, plan)
		if err != nil {
			return nil, err
		}
		lp.first, lp.probeStart, lp.cached, artifacts = res.feats, res.probeStart, res.cached, res.artifacts
		lp.probeEvals = res.probeEvals
	}
	if err := r.m.SetBNMode(plan.BatchNorm); err != nil {
		return nil, err
	}
	r.reportSizes(plan)
	if err := r.dp.broadcastModel(r.m); err != nil {
		return nil, err
	}
	rs := &RunStart{Config: cfg, Plan: plan, Resumed: len(lp.state.History), Resume: opts.Resume}
	if err := r.ev.record(Event{Kind: EventRunStart, Run: rs}); err != nil {
		return nil, err
	}
	for i := range artifacts {
		if err := r.ev.record(Event{Kind: EventArtifact, Artifact: &artifacts[i]}); err != nil {
			return nil, err
		}
	}
	if err := lp.train(ctx); err != nil {
		return nil, err
	}
	res, err := lp.finish(ctx)
	if err != nil {
		return nil, err
	}
	res.Seconds = r.since()
	if err := r.ev.record(Event{Kind: EventRunEnd, Result: res}); err != nil {
		res.Model.Close()
		return nil, err
	}
	return res, nil
}

// run is what a training computes with: the data and their loaders, the
// model, where it computes, the data-parallel group and where events go.
type run struct {
	cfg  Config
	opts Options
	d    *Data
	// start is when this process began the run.
	start time.Time
	at    placement
	m     *Model
	gen   *torch.Generator
	ev    *emitter
	// dp is the data-parallel group (nil when training alone); only the
	// primary process records the run and reports progress.
	dp *dataParallel

	trainLoader, valLoader *data.BatchLoader
	// trainEvalLoader serves the training images each epoch's train
	// accuracy is measured on: the sample trainSample chose, with
	// evaluation transforms.
	trainEvalLoader *data.BatchLoader
	classWeights    *torch.Tensor

	// loaders are every loader the run made, closed or not, for the
	// images they skipped; logged holds the loader messages already
	// printed, since each pass over the data makes its own loader.
	loaders []*data.BatchLoader
	logMu   sync.Mutex
	logged  map[string]bool
}

// since is the wall time in seconds since this process began the run.
func (r *run) since() float64 { return now().Sub(r.start).Seconds() }

func (r *run) info(format string, args ...any) {
	r.ev.emit(Event{Kind: EventInfo, Message: fmt.Sprintf(format, args...)})
}

func (r *run) warn(format string, args ...any) {
	r.ev.emit(Event{Kind: EventWarning, Message: fmt.Sprintf(format, args...)})
}

// decide records an automatic choice in plan and reports it with
// message, or "key: auto → value: reason" when message is "".
func (r *run) decide(plan *Plan, key, value, reason, message string) {
	plan.Decisions = append(plan.Decisions, Decision{Key: key, Value: value, Reason: reason})
	if message == "" {
		message = fmt.Sprintf("%s: auto → %s: %s", key, value, reason)
	}
	r.info("%s", message)
}

// setup builds what the run computes with. A new run decides the
// placement into plan; a resumed one places as its plan says.
func (r *run) setup(ctx context.Context, plan *Plan, fresh bool) error {
	cfg := r.cfg
	var err error
	if fresh {
		if err := r.placePlan(plan); err != nil {
			return err
		}
		r.decideData(plan)
	} else {
		// A resumed run normalises and resizes as its plan says.
		r.d.Normalize, r.d.EvalResize = plan.normalize(), plan.evalResize(cfg)
		if err := r.d.pipelines(cfg); err != nil {
			return err
		}
	}
	if r.at, err = planPlacement(plan); err != nil {
		return err
	}
	if r.dp, r.at.device, err = joinDataParallel(ctx, r.at.device, r.info); err != nil {
		return err
	}
	if r.dp != nil {
		r.at.shard = r.dp.shard
		r.info("data-parallel: %v", r.dp)
	}
	torch.ManualSeed(cfg.Seed)
	if r.gen, err = torch.NewGenerator(cfg.Seed); err != nil {
		return err
	}
	if r.m, err = buildModel(ctx, cfg, int64(len(r.d.Classes)), r.opts.Hub, r.info); err != nil {
		return err
	}
	_ = nn.Walk(r.m.Head, func(_ string, x nn.Module) error {
		if dr, ok := x.(*nn.Dropout); ok {
			dr.Generator = r.gen
		}
		return nil
	})
	if err := r.at.place(r.m); err != nil {
		return err
	}
	r.info("computing on %v", r.at)
	// The allocator decides whether every step faults its activations
	// in again (glibc) or reuses them: worth a line in every log.
	r.info("malloc: %v", torch.Allocator())
	if r.trainLoader, err = r.loader(r.d.TrainSet, r.d.Train, trainLoader); err != nil {
		return fmt.Errorf("data.train: %w", err)
	}
	if r.valLoader, err = r.loader(r.d.ValSet, r.d.Val, keepAllLoader); err != nil {
		return fmt.Errorf("data.val: %w", err)
	}
	if r.trainEvalLoader, err = r.loader(r.d.TrainSet, trainSample(cfg.Seed, r.d.Train), keepAllLoader); err != nil {
		return fmt.Errorf("data.train: %w", err)
	}
	if cfg.Train.ClassWeights == "balanced" {
		w := make([]float32, len(r.d.ClassWeights))
		for i, v := range r.d.ClassWeights {
			w[i] = float32(v)
		}
		cw, err := torch.FromSlice(w)
		if err != nil {
			return err
		}
		if r.classWeights, err = cw.ToDevice(r.at.device); err != nil {
			return err
		}
		r.classWeights.Keep()
	}
	return nil
}

// loaderLog prints a loader's warning once per run.
func (r *run) loaderLog(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if r.firstTime(msg) {
		r.warn("%s", msg)
	}
}

// skip warns, once per run, that a loader skipped an image.
func (r *run) skip(s data.SkippedImage) {
	if r.firstTime("skip " + s.Path) {
		r.ev.emit(Event{Kind: EventWarning, Skipped: s.Path, Message: printable.Text(fmt.Sprintf("skipping %s: %v", s.Path, s.Err))})
	}
}

// firstTime reports whether the run meets key for the first time.
func (r *run) firstTime(key string) bool {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if r.logged == nil {
		r.logged = map[string]bool{}
	}
	seen := r.logged[key]
	r.logged[key] = true
	return !seen
}

// loader makes a batch loader over indices of set and keeps it for
// skipped.
func (r *run) loader(set *data.Dataset, indices []int, kind loaderKind) (*data.BatchLoader, error) {
	l, err := r.d.loader(r.cfg, r.at, set, indices, kind, r.loaderLog, r.skip)
	if err != nil {
		return nil, err
	}
	r.loaders = append(r.loaders, l)
	return l, nil
}

// skipped lists the images the run's loaders skipped, each once.
func (r *run) skipped() []data.SkippedImage {
	var out []data.SkippedImage
	seen := map[string]bool{}
	for _, l := range r.loaders {
		for _, s := range l.Skipped() {
			if !seen[s.Path] {
				seen[s.Path] = true
				out = append(out, s)
			}
		}
	}
	return out
}

func (r *run) close() {
	if r.trainLoader != nil {
		r.trainLoader.Close()
	}
	if r.valLoader != nil {
		r.valLoader.Close()
	}
	if r.trainEvalLoader != nil {
		r.trainEvalLoader.Close()
	}
	r.dp.free()
	if r.m != nil {
		r.m.Close()
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
			m.Close()
			return nil, fmt.Errorf("model.weights: %w", err)
		}
		info("backbone %s: %d tensors loaded from %s", cfg.Model.Arch, len(r.Loaded), cfg.Model.Weights)
		if r.Stripped != "" {
			info("model.weights: the file's keys start with %q (saved from a wrapper such as DataParallel); loaded without it", r.Stripped)
		}
	}
	if err := m.SetBNMode(ProvisionalBN(cfg)); err != nil {
		return nil, err
	}
	return m, nil
}

// reportSizes reports the head's size and the checkpoints' of plan. It
// leaves the model frozen as plan's last stage: a stage freezes as it
// starts.
func (r *run) reportSizes(plan *Plan) {
	head, _ := nn.CountParameters(r.m.Head)
	total, _ := nn.CountParameters(r.m)
	fs := r.m.FeatureShape
	in := pooledWidth(r.cfg.Model.Head.Pooling, fs[0], fs[1], fs[2])
	r.info("head: %s pooling → %d features → %v → %d classes: %s parameters (%s as float32); model total %s",
		r.cfg.Model.Head.Pooling, in, r.cfg.Model.Head.Hidden, len(r.d.Classes), nn.Thousands(head),
		nn.Bytes(head*4), nn.Thousands(total))
	trained := map[string]bool{}
	for _, st := range plan.Stages {
		if r.m.Freeze(st.Freeze, r.cfg.Train.BNAffine) == nil {
			for _, e := range nn.Trainable(r.m) {
				trained[e.Name] = true
			}
		}
	}
	if full, delta, err := CheckpointSizes(r.m, trained); err == nil {
		r.info("checkpoints: %s full, %s delta (head, BatchNorm statistics and the layers the recipe unfreezes)",
			nn.Bytes(full), nn.Bytes(delta))
	}
	if head > 10_000_000 {
		r.warn("the head has %s parameters (%s, %s with Adam's state): a head this large memorises a small dataset; "+
			"model.head.pooling: avg and one small layer is the usual cure", nn.Thousands(head), nn.Bytes(head*4), nn.Bytes(head*12))
	}
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

// AdaptBN resets the running statistics of every BatchNorm of m's backbone
// and re-estimates them as cumulative averages over the batches of images
// (on m's device, in its memory format), in a no-grad pass; the layers are left in m's BatchNorm mode (frozen
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
			_, err := m.backboneFeatures(x)
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
	var groups []optim.ParamGroup
	var lrs []float64
	for _, part := range []struct {
		mod nn.Module
		lr  float64
	}{{m.Head, c.LR}, {m.Backbone, c.LR * lrMult}} {
		if part.lr == 0 {
			continue
		}
		var template optim.ParamGroup
		switch c.Optimizer {
		case "adamw":
			template = optim.AdamWGroup()
		case "adam":
			template = optim.AdamGroup()
		default:
			template = optim.ParamGroup{Momentum: c.Momentum, Nesterov: c.Nesterov}
		}
		template.LR, template.WeightDecay = part.lr, c.WeightDecay
		for _, g := range optim.DecayGroups(part.mod, template) {
			groups = append(groups, g)
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
