package probe

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/finetune-go/finetune/internal/seed"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/torch/optim"
	"github.com/finetune-go/finetune/vision/data"
)

// SearchOptions configure Search. Zero fields take the defaults.
type SearchOptions struct {
	// Folds of the stratified k-fold cross-validation; 0 means 3.
	Folds int
	// Seed draws the folds, the heads' initialisation, the batches and
	// dropout: the same seed gives the same result.
	Seed uint64
	// LRs and WDs are the grid of AdamW's learning rate and weight decay;
	// nil means DefaultLRs and DefaultWDs.
	LRs, WDs []float64
	// Epochs of each training; 0 means 5, as finetune's head stage.
	Epochs int
	// BatchSize of each step; 0 means 32.
	BatchSize int
	// LabelSmoothing of the training loss (the run's); validation loss is
	// the plain cross entropy.
	LabelSmoothing float64
	// NewHead makes the head trained on features of width in; nil makes
	// one linear layer. Pass the run's head to search for it.
	NewHead func(in, classes int64) (nn.Layer, error)
	// Cs is the probe's grid of C; nil means DefaultCs.
	Cs []float64
}

// Default grids of Search.
var (
	DefaultLRs = []float64{1e-4, 3e-4, 1e-3, 3e-3, 1e-2}
	DefaultWDs = []float64{0, 1e-2, 1e-1}
)

func (o SearchOptions) withDefaults() SearchOptions {
	if o.Folds == 0 {
		o.Folds = 3
	}
	if o.LRs == nil {
		o.LRs = DefaultLRs
	}
	if o.WDs == nil {
		o.WDs = DefaultWDs
	}
	if o.Epochs == 0 {
		o.Epochs = 5
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if o.Cs == nil {
		o.Cs = DefaultCs
	}
	if o.NewHead == nil {
		o.NewHead = func(in, classes int64) (nn.Layer, error) { return nn.NewLinear(in, classes, true) }
	}
	return o
}

// Trial is one point of the grid, scored on every fold.
type Trial struct {
	LR          float64 `json:"lr"`
	WeightDecay float64 `json:"weight_decay"`
	// FoldAccuracy is the validation accuracy after the last epoch on
	// each fold; Accuracy their mean, Loss the mean validation cross
	// entropy.
	FoldAccuracy []float64 `json:"fold_accuracy"`
	Accuracy     float64   `json:"accuracy"`
	Loss         float64   `json:"loss"`
}

// SearchResult is what Search found.
type SearchResult struct {
	Seed      uint64  `json:"seed"`
	Folds     int     `json:"folds"`
	Epochs    int     `json:"epochs"`
	BatchSize int     `json:"batch_size"`
	Trials    []Trial `json:"trials"`
	// Best is the trial of the highest mean accuracy, the lowest loss on
	// a tie.
	Best Trial `json:"best"`
	// Probe is the linear probe's cross-validation on the same folds: the
	// baseline the head should beat.
	Probe *CVReport `json:"probe"`
}

// Search cross-validates, on cached features feats (N×D) with labels in
// [0, classes), the head trained with AdamW for every learning rate and
// weight decay of the grid, and the linear probe for every C of its
// grid, all on the same stratified folds. Each training runs
// opts.Epochs epochs of shuffled batches with a cosine decay of the
// learning rate to zero (optim.Cosine) and no decay on biases and
// BatchNorm parameters (optim.DecayGroups), as finetune's trainer. Every trial on a fold starts from
// the same head and sees the same batches (common random numbers), so
// trials differ only by their settings. Search reseeds libtorch's global
// generator (torch.ManualSeed) to initialise the heads.
func Search(ctx context.Context, feats *torch.Tensor, labels []int, classes int, opts SearchOptions) (*SearchResult, error) {
	opts = opts.withDefaults()
	if feats.Dim() != 2 || feats.Shape()[0] != int64(len(labels)) {
		return nil, fmt.Errorf("probe: search: want N×D features for %d labels, got shape %v", len(labels), feats.Shape())
	}
	folds, err := data.StratifiedKFold(labels, opts.Folds, opts.Seed)
	if err != nil {
		return nil, fmt.Errorf("probe: search: %w", err)
	}
	p, err := newProblem(feats, labels, classes)
	if err != nil {
		return nil, err
	}
	defer p.free()
	res := &SearchResult{Seed: opts.Seed, Folds: opts.Folds, Epochs: opts.Epochs, BatchSize: opts.BatchSize}
	if res.Probe, err = crossValidate(p, folds, CVOptions{Cs: opts.Cs}); err != nil {
		return nil, fmt.Errorf("probe: search: %w", err)
	}
	for _, lr := range opts.LRs {
		for _, wd := range opts.WDs {
			res.Trials = append(res.Trials, Trial{LR: lr, WeightDecay: wd})
		}
	}
	for f, fold := range folds {
		sets, err := foldTensors(feats, labels, fold)
		if err != nil {
			return nil, fmt.Errorf("probe: search: %w", err)
		}
		for i := range res.Trials {
			if err := ctx.Err(); err != nil {
				sets.free()
				return nil, err
			}
			tr := &res.Trials[i]
			acc, loss, err := trainHead(sets, classes, tr.LR, tr.WeightDecay, seed.Mix(opts.Seed, uint64(f)), opts)
			if err != nil {
				sets.free()
				return nil, fmt.Errorf("probe: search: lr %g, weight decay %g, fold %d: %w", tr.LR, tr.WeightDecay, f+1, err)
			}
			tr.FoldAccuracy = append(tr.FoldAccuracy, acc)
			tr.Accuracy += acc / float64(len(folds))
			tr.Loss += loss / float64(len(folds))
		}
		sets.free()
	}
	res.Best = res.Trials[0]
	for _, tr := range res.Trials[1:] {
		if tr.Accuracy > res.Best.Accuracy || tr.Accuracy == res.Best.Accuracy && tr.Loss < res.Best.Loss {
			res.Best = tr
		}
	}
	return res, nil
}

// foldSets are one fold's features and labels, training and validation.
type foldSets struct {
	xTrain, yTrain, xVal, yVal *torch.Tensor
}

func (s *foldSets) free() {
	for _, t := range []*torch.Tensor{s.xTrain, s.yTrain, s.xVal, s.yVal} {
		t.Free()
	}
}

func foldTensors(feats *torch.Tensor, labels []int, fold data.Fold) (*foldSets, error) {
	s := torch.NewScope()
	defer s.Close()
	pick := func(idx []int) (*torch.Tensor, *torch.Tensor, error) {
		ix, ys := make([]int64, len(idx)), make([]int64, len(idx))
		for i, j := range idx {
			ix[i], ys[i] = int64(j), int64(labels[j])
		}
		it, err := torch.FromSlice(ix)
		if err == nil {
			it, err = it.ToDevice(feats.Device())
		}
		var x, y *torch.Tensor
		if err == nil {
			x, err = feats.IndexSelect(0, it)
		}
		if err == nil {
			y, err = torch.FromSlice(ys)
		}
		if err == nil {
			y, err = y.ToDevice(feats.Device())
		}
		if err != nil {
			return nil, nil, err
		}
		return x.Keep(), y.Keep(), nil
	}
	out := &foldSets{}
	var err error
	if out.xTrain, out.yTrain, err = pick(fold.Train); err != nil {
		return nil, err
	}
	if out.xVal, out.yVal, err = pick(fold.Val); err != nil {
		out.free()
		return nil, err
	}
	return out, nil
}

// trainHead trains a fresh head on the fold's training features and
// returns its validation accuracy and mean cross entropy.
func trainHead(sets *foldSets, classes int, lr, wd float64, seed uint64, o SearchOptions) (acc, loss float64, err error) {
	torch.ManualSeed(seed)
	head, err := o.NewHead(sets.xTrain.Shape()[1], int64(classes))
	if err != nil {
		return 0, 0, err
	}
	defer nn.Free(head)
	gen, err := torch.NewGenerator(seed)
	if err != nil {
		return 0, 0, err
	}
	defer gen.Free()
	err = nn.Walk(head, func(_ string, m nn.Module) error {
		if d, ok := m.(*nn.Dropout); ok {
			d.Generator = gen
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if dev := sets.xTrain.Device(); dev.Type != torch.DeviceCPU {
		if err := nn.To(head, dev, torch.PreserveFormat); err != nil {
			return 0, 0, err
		}
	}
	template := optim.AdamWGroup()
	template.LR, template.WeightDecay = lr, wd
	opt, err := optim.NewAdamW(optim.DecayGroups(head, template)...)
	if err != nil {
		return 0, 0, err
	}
	n := int(sets.xTrain.Shape()[0])
	order := make([]int64, n)
	for i := range order {
		order[i] = int64(i)
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	schedule := optim.Cosine{Total: o.Epochs * ((n + o.BatchSize - 1) / o.BatchSize)}
	step := 0
	nn.Train(head, true)
	for range o.Epochs {
		r.Shuffle(n, func(a, b int) { order[a], order[b] = order[b], order[a] })
		for start := 0; start < n; start += o.BatchSize {
			for _, g := range opt.Groups() {
				g.LR = lr * schedule.Factor(step)
			}
			if err := trainStep(head, opt, sets, order[start:min(start+o.BatchSize, n)], o.LabelSmoothing); err != nil {
				return 0, 0, err
			}
			step++
		}
	}
	nn.Train(head, false)
	return evaluate(head, sets)
}

func trainStep(head nn.Layer, opt optim.Optimizer, sets *foldSets, batch []int64, smoothing float64) error {
	s := torch.NewScope()
	defer s.Close()
	idx, err := torch.FromSlice(batch)
	if err == nil {
		idx, err = idx.ToDevice(sets.xTrain.Device())
	}
	var x, y, logits, loss *torch.Tensor
	if err == nil {
		x, err = sets.xTrain.IndexSelect(0, idx)
	}
	if err == nil {
		y, err = sets.yTrain.IndexSelect(0, idx)
	}
	if err == nil {
		logits, err = head.Forward(x)
	}
	if err == nil {
		loss, err = torch.CrossEntropy(logits, y, torch.LossOptions{LabelSmoothing: smoothing})
	}
	if err == nil {
		err = loss.Backward()
	}
	if err == nil {
		err = opt.Step()
	}
	if err == nil {
		err = opt.ZeroGrad()
	}
	return err
}

func evaluate(head nn.Layer, sets *foldSets) (acc, loss float64, err error) {
	s := torch.NewScope()
	defer s.Close()
	err = torch.NoGrad(func() error {
		logits, err := head.Forward(sets.xVal)
		if err != nil {
			return err
		}
		l, err := torch.CrossEntropy(logits, sets.yVal, torch.LossOptions{})
		if err != nil {
			return err
		}
		if loss, err = l.Item(); err != nil {
			return err
		}
		pred, err := logits.Argmax(1, false)
		if err != nil {
			return err
		}
		hits, err := pred.Eq(sets.yVal)
		if err != nil {
			return err
		}
		mean, err := hits.ToDType(torch.Float64)
		if err == nil {
			mean, err = mean.Mean()
		}
		if err == nil {
			acc, err = mean.Item()
		}
		return err
	})
	return acc, loss, err
}
