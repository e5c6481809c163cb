package finetune

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/finetune-go/finetune/vision/models"
)

// LRFindOptions configure a learning-rate range test; a zero field takes
// its default.
type LRFindOptions struct {
	// MinLR and MaxLR bound the rates tried: 1e-7 and 10.
	MinLR, MaxLR float64
	// Steps is the most steps the test takes: 200.
	Steps int
	// Stage is the index in cfg.Stages of the stage whose freeze point
	// and backbone multiplier the test trains with (0, the first).
	Stage int
	// Observer receives a step event per step; nil ignores them.
	Observer func(Event)
}

// LRFinding is a range test's outcome: the rate of each step (the head's;
// the backbone's is the stage's multiple of it), the loss of its batch
// and that loss smoothed, and the rate suggested.
type LRFinding struct {
	Stage    string    `json:"stage"`
	LRs      []float64 `json:"lrs"`
	Losses   []float64 `json:"losses"`
	Smoothed []float64 `json:"smoothed"`
	// Suggested is the rate where the smoothed loss falls fastest
	// against the logarithm of the rate.
	Suggested float64 `json:"suggested"`
	// Diverged says the test stopped early, the smoothed loss having
	// risen above four times its lowest (or become NaN).
	Diverged bool `json:"diverged"`
}

// smoothing is the weight of the past in the smoothed loss, fastai's.
const smoothing = 0.98

// FindLR runs Smith's learning-rate range test ("Cyclical Learning Rates
// for Training Neural Networks", 2017, as fastai's lr_find) on m with the
// training images of cfg: one optimisation step per batch, the rate
// growing exponentially from MinLR to MaxLR over Steps steps, with cfg's
// optimizer, weight decay and augmentation and the stage's freeze point,
// until the smoothed loss passes four times its lowest. The loss is
// unweighted cross entropy in float32 on m's device. m starts from its
// current weights and gets them back afterwards, exactly: parameters,
// BatchNorm statistics, which parameters train and its mode.
func FindLR(ctx context.Context, m *Model, cfg Config, o LRFindOptions) (finding *LRFinding, err error) {
	if o.MinLR == 0 {
		o.MinLR = 1e-7
	}
	if o.MaxLR == 0 {
		o.MaxLR = 10
	}
	if o.Steps == 0 {
		o.Steps = 200
	}
	switch {
	case !(o.MinLR > 0 && o.MaxLR > o.MinLR):
		return nil, fmt.Errorf("lr-find: the rates must grow from a positive minimum, got %g to %g", o.MinLR, o.MaxLR)
	case o.Steps < 2:
		return nil, fmt.Errorf("lr-find: %d steps: at least 2", o.Steps)
	case o.Stage < 0 || o.Stage >= len(cfg.Stages):
		return nil, fmt.Errorf("lr-find: stage %d: the configuration has %d", o.Stage, len(cfg.Stages))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d, err := OpenData(cfg)
	if err != nil {
		return nil, err
	}
	saved, err := saveModel(m)
	if err != nil {
		return nil, err
	}
	defer func() {
		if rerr := saved.restore(m); rerr != nil {
			finding, err = nil, errors.Join(err, rerr)
		}
	}()
	stage := cfg.Stages[o.Stage]
	r := &run{cfg: cfg, d: d, m: m, at: modelPlacement(m), ev: newEmitter(Options{Observer: o.Observer}, -1)}
	if r.trainLoader, err = r.loader(d.TrainSet, d.Train, trainLoader); err != nil {
		return nil, fmt.Errorf("data.train: %w", err)
	}
	defer r.trainLoader.Close()
	if err := m.Freeze(stage.Freeze, cfg.Train.BNAffine); err != nil {
		return nil, fmt.Errorf("stages[%d].freeze: %w", o.Stage, err)
	}
	tc := cfg.Train
	tc.LR = 1 // the groups' rates are multiples of the step's
	lp := &loop{run: r, plan: &Plan{}, state: trainState{Trained: map[string]bool{}}}
	if lp.opt, lp.baseLR, err = newOptimizer(tc, m, stage.BackboneLRMult); err != nil {
		return nil, fmt.Errorf("stages[%d]: %w", o.Stage, err)
	}
	frozen := m.BackboneFrozen()
	m.Train(true)
	f := &LRFinding{Stage: stage.Name}
	var avg, best float64
	for epoch := 0; len(f.LRs) < o.Steps && !f.Diverged; epoch++ {
		for b, err := range r.trainLoader.Epoch(ctx, epoch) {
			if err != nil {
				return nil, fmt.Errorf("data: %w", err)
			}
			i := len(f.LRs)
			lr := o.MinLR * math.Pow(o.MaxLR/o.MinLR, float64(i)/float64(o.Steps-1))
			for g, group := range lp.opt.Groups() {
				group.LR = lp.baseLR[g] * lr
			}
			tot, err := lp.step(ctx, trainBatch{x: b.Images, y: b.Labels, n: len(b.Indices)}, frozen)
			b.Free()
			if err != nil {
				return nil, err
			}
			avg = smoothing*avg + (1-smoothing)*tot.loss
			smoothed := avg / (1 - math.Pow(smoothing, float64(i+1)))
			f.LRs, f.Losses, f.Smoothed = append(f.LRs, lr), append(f.Losses, tot.loss), append(f.Smoothed, smoothed)
			r.ev.emit(Event{Kind: EventStep, Stage: "lr-find", Step: i + 1, Steps: o.Steps, Loss: smoothed, LR: lr})
			if i == 0 || smoothed < best {
				best = smoothed
			}
			if math.IsNaN(smoothed) || smoothed > 4*best {
				f.Diverged = true
			}
			if f.Diverged || len(f.LRs) == o.Steps {
				break
			}
		}
	}
	f.Suggested = steepest(f.LRs, f.Smoothed)
	return f, nil
}

// steepest returns the rate where smoothed falls fastest against log(lr),
// before its lowest point. The first tenth of the steps, where the
// average is still filling and the rates too small to move the weights,
// is left out of both.
func steepest(lrs, smoothed []float64) float64 {
	from := min(max(1, len(lrs)/10), len(lrs)-1)
	low := from
	for i := from; i < len(smoothed); i++ {
		if smoothed[i] < smoothed[low] {
			low = i
		}
	}
	best, bestSlope := low, math.Inf(1)
	for i := from; i < low; i++ {
		slope := (smoothed[i+1] - smoothed[i-1]) / (math.Log(lrs[i+1]) - math.Log(lrs[i-1]))
		if slope < bestSlope {
			best, bestSlope = i, slope
		}
	}
	return lrs[best]
}

// savedModel is a model's state to put back: its tensors' values, which
// parameters train and whether it was training.
type savedModel struct {
	values   []nn.Named[*torch.Tensor]
	trains   []bool
	training bool
}

func saveModel(m *Model) (*savedModel, error) {
	s := &savedModel{training: m.Training()}
	for _, p := range nn.NamedParameters(m) {
		s.trains = append(s.trains, p.Value.RequiresGrad())
	}
	err := torch.NoGrad(func() error {
		for _, e := range nn.StateDict(m) {
			c, err := e.Value.Clone()
			if err != nil {
				return err
			}
			s.values = append(s.values, nn.Named[*torch.Tensor]{Name: e.Name, Value: c.Keep()})
		}
		return nil
	})
	if err != nil {
		s.free()
		return nil, err
	}
	return s, nil
}

// restore puts the state back into m and releases it.
func (s *savedModel) restore(m *Model) error {
	defer s.free()
	state := nn.StateDict(m)
	err := torch.NoGrad(func() error {
		for i, e := range state {
			if err := e.Value.Copy_(s.values[i].Value); err != nil {
				return fmt.Errorf("lr-find: restoring %s: %w", e.Name, err)
			}
		}
		return nil
	})
	for i, p := range nn.NamedParameters(m) {
		err = errors.Join(err, p.Value.ClearGrad(), p.Value.SetRequiresGrad(s.trains[i]))
	}
	m.Train(s.training)
	return err
}

func (s *savedModel) free() {
	for _, v := range s.values {
		v.Value.Free()
	}
	s.values = nil
}

// NewRunModel builds the model a run of cfg starts from, on the CPU: the
// architecture with its pretrained weights (hub finds named ones; nil
// uses torch hub's cache) and a new head for the classes of
// cfg.Data.Train. The caller owns it (Model.Close).
func NewRunModel(ctx context.Context, cfg Config, hub *models.Hub) (*Model, error) {
	set, err := data.ImageFolder(cfg.Data.Train)
	if err != nil {
		return nil, fmt.Errorf("data.train: %w", err)
	}
	return buildModel(ctx, cfg, int64(len(set.Classes)), hub, func(string, ...any) {})
}
