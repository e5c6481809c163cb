package finetune

import (
	"context"
	"errors"
	"fmt"

	"github.com/finetune-go/finetune/internal/plural"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/vision/data"
)

// cacheValid reports whether the backbone's output for an image cannot
// change during the stage: nothing in it trains and its BatchNorm layers,
// if it has any, use stored statistics.
func (r *run) cacheValid() bool {
	mode := r.m.BNMode()
	return r.m.BackboneFrozen() && (mode == "frozen" || mode == "adapt" || mode == "none")
}

// stageFeatures holds backbone features that stay valid for a stage.
type stageFeatures struct {
	// train and val are the features of the training and validation
	// images, rows in loader order, nil when not cached; in a stage that
	// caches activations val is those of the validation images.
	train, val *torch.Tensor
	// trainEval is the features (or activations, as val) of the images
	// the train accuracy is measured on (run.trainEvalLoader), cached
	// with val.
	trainEval *torch.Tensor
	// trainRows and valRows are the dataset indices of the rows: the
	// images a loader decoded, which under data.on_bad_image: skip are
	// fewer than it was given.
	trainRows, valRows []int
	// rowOf maps a position in the training indices to its row of train,
	// -1 for an image that was skipped.
	rowOf []int
	// trainFrozen says the backbone runs without autograd for training
	// batches (everything in it is frozen).
	trainFrozen bool
	// acts is the fixed prefix's activations of the training images, when
	// the stage caches them (PlanStage.ActivationViews).
	acts *activationCache
}

func (f *stageFeatures) free(m *Model) {
	f.train.Free()
	f.val.Free()
	f.trainEval.Free()
	if f.acts != nil {
		f.acts.free()
	}
	m.StopFused()
}

// stageFeatures prepares stage p's features: the fused backbone when
// its output is fixed, and the features the plan caches, computed once;
// p.Cache says which.
func (r *run) stageFeatures(ctx context.Context, p stagePlan) (_ *stageFeatures, err error) {
	f := &stageFeatures{trainFrozen: r.m.BackboneFrozen()}
	defer func() {
		if err != nil {
			f.free(r.m)
		}
	}()
	// The part of the backbone that is frozen with its BatchNorm layers
	// on stored statistics, all of it or a prefix, is pure inference:
	// it runs with BatchNorm fused away, in the layout BENCHMARKS.md
	// measured fastest (channels-last), without autograd. It is fused
	// here, after AdaBN, from the weights the stage starts with, which
	// it never changes.
	if err := r.m.UseFused(torch.ChannelsLast, r.at.frozenType()); err != nil {
		return nil, err
	}
	if p.ActivationViews > 0 {
		if f.acts, err = r.cacheActivations(ctx, p); err != nil {
			return nil, err
		}
		// The prefix is fixed for the stage: validation and the train
		// accuracy run only the layers after it too.
		if f.val, _, err = r.pass(ctx, r.valLoader, 0, r.m.PrefixActivations); err != nil {
			return nil, fmt.Errorf("caching validation activations: %w", err)
		}
		if f.trainEval, _, err = r.pass(ctx, r.trainEvalLoader, 0, r.m.PrefixActivations); err != nil {
			return nil, fmt.Errorf("caching the activations of the training images the train accuracy is measured on: %w", err)
		}
		r.info("stage %s: the backbone's fixed prefix ran once over %s of the training images; each epoch runs only the layers that train",
			p.Name, plural.Count(p.ActivationViews, "view"))
	}
	if p.Cache == "none" {
		return f, nil
	}
	if f.val, f.valRows, err = r.features(ctx, r.valLoader); err != nil {
		return nil, fmt.Errorf("caching validation features: %w", err)
	}
	if f.trainEval, _, err = r.features(ctx, r.trainEvalLoader); err != nil {
		return nil, fmt.Errorf("caching the features of the training images the train accuracy is measured on: %w", err)
	}
	if p.Cache == "training and validation" {
		fixed, err := r.loader(r.d.TrainSet, r.d.Train, keepAllLoader)
		if err != nil {
			return nil, err
		}
		f.train, f.trainRows, err = r.features(ctx, fixed)
		fixed.Close()
		if err != nil {
			return nil, fmt.Errorf("caching training features: %w", err)
		}
		// The evaluation loader is in order, so the rows are the training
		// indices less the skipped ones.
		f.rowOf = rowsOf(r.d.Train, f.trainRows)
	}
	r.info("stage %s: backbone frozen with fixed BatchNorm: %s features computed once and reused every epoch", p.Name, p.Cache)
	return f, nil
}

// features runs the frozen backbone over every batch of loader and keeps
// the head's inputs, in loader order, with the dataset index of each row.
func (r *run) features(ctx context.Context, loader *data.BatchLoader) (*torch.Tensor, []int, error) {
	return r.pass(ctx, loader, 0, r.m.FrozenFeatures)
}

// pass runs compute, without autograd and with the model in evaluation
// mode, over every batch of the loader's epoch and keeps the outputs, in
// loader order, with the dataset index of each row. The rows are
// written into one tensor as they come, which the result is (narrowed to
// the images decoded), so a pass takes the memory of its result once.
func (r *run) pass(ctx context.Context, loader *data.BatchLoader, epoch int, compute func(*torch.Tensor) (*torch.Tensor, error)) (*torch.Tensor, []int, error) {
	var (
		out  *torch.Tensor
		rows []int
	)
	r.m.Train(false)
	err := torch.NoGrad(func() error {
		bounds := loader.Bounds()
		for b, err := range loader.Epoch(ctx, epoch) {
			if err != nil {
				return err
			}
			s := torch.NewScope()
			x, err := r.at.input(b.Images)
			var f *torch.Tensor
			if err == nil {
				f, err = compute(x)
			}
			if err == nil && out == nil {
				shape := append([]int64{int64(bounds[len(bounds)-1][1])}, f.Shape()[1:]...)
				if out, err = torch.Empty(shape, f.DType(), f.Device()); err == nil {
					out.Keep()
				}
			}
			if err == nil {
				var dst *torch.Tensor
				if dst, err = out.Narrow(0, int64(len(rows)), int64(len(b.Indices))); err == nil {
					err = dst.Copy_(f)
				}
				rows = append(rows, b.Indices...)
			}
			s.Close()
			b.Free()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && len(rows) == 0 {
		err = errors.New("no image could be loaded")
	}
	if err != nil {
		out.Free()
		return nil, nil, err
	}
	if int64(len(rows)) == out.Shape()[0] {
		return out, rows, nil
	}
	defer out.Free()
	kept, err := out.Narrow(0, 0, int64(len(rows)))
	if err != nil {
		return nil, nil, err
	}
	return kept.Keep(), rows, nil
}

// trainBatch is one training batch: images, cached features or cached
// activations (the backbone's fixed prefix's), and labels.
type trainBatch struct {
	x, feats, acts, y *torch.Tensor
	n                 int
}

// epochBatches yields the training batches of one epoch of stage p,
// starting after the batches already done.
func (lp *loop) epochBatches(ctx context.Context, p stagePlan, feats *stageFeatures) func(yield func(trainBatch, error) bool) {
	return func(yield func(trainBatch, error) bool) {
		perPass := lp.trainLoader.Len()
		first := lp.state.Epoch*p.StepsPerEpoch + lp.state.StepInEpoch
		last := (lp.state.Epoch + 1) * p.StepsPerEpoch
		for g := first; g < last; {
			pass, pos := g/perPass, g%perPass
			// Each stage draws its own sequence of shuffles.
			loaderEpoch := p.index*1_000_000 + pass
			// Cached rows, features or a view of the activations, are
			// served in the order and batches the loader would serve
			// their images.
			table, rowOf := feats.train, feats.rowOf
			if feats.acts != nil {
				table, rowOf = feats.acts.views[pass%len(feats.acts.views)], feats.acts.rowOf
			}
			if table != nil {
				order, bounds := lp.trainLoader.Order(loaderEpoch), lp.trainLoader.Bounds()
				for ; pos < perPass && g < last; pos, g = pos+1, g+1 {
					idx := make([]int64, 0, bounds[pos][1]-bounds[pos][0])
					labels := make([]int64, 0, cap(idx))
					for _, k := range order[bounds[pos][0]:bounds[pos][1]] {
						row := rowOf[k]
						if row < 0 { // skipped: not decoded
							continue
						}
						idx = append(idx, int64(row))
						labels = append(labels, int64(lp.d.TrainSet.Samples[lp.d.Train[k]].Label))
					}
					b, err := lp.gatherRows(table, idx, labels, feats.acts != nil)
					if !yield(b, err) || err != nil {
						return
					}
				}
				continue
			}
			skip := pos
			for b, err := range lp.trainLoader.Epoch(ctx, loaderEpoch) {
				if err != nil {
					yield(trainBatch{}, err)
					return
				}
				if skip > 0 {
					skip--
					b.Free()
					continue
				}
				tb := trainBatch{x: b.Images, y: b.Labels, n: len(b.Indices)}
				ok := yield(tb, nil)
				b.Free()
				g++
				if !ok {
					return
				}
				if g >= last {
					return
				}
			}
			g = (pass + 1) * perPass
			if g < first {
				g = first
			}
		}
	}
}

// gatherRows makes the batch of rows idx of all, cached features or,
// when acts, activations, with their labels.
func (lp *loop) gatherRows(all *torch.Tensor, idx, labels []int64, acts bool) (trainBatch, error) {
	it, err := torch.FromSlice(idx)
	if err != nil {
		return trainBatch{}, err
	}
	defer it.Free()
	f, err := all.IndexSelect(0, it)
	if err != nil {
		return trainBatch{}, err
	}
	y, err := torch.FromSlice(labels)
	if err != nil {
		f.Free()
		return trainBatch{}, err
	}
	if acts {
		return trainBatch{acts: f.Keep(), y: y.Keep(), n: len(idx)}, nil
	}
	return trainBatch{feats: f.Keep(), y: y.Keep(), n: len(idx)}, nil
}
