package finetune

import (
	"context"
	"errors"
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/vision/data"
)

// cacheValid reports whether the backbone's output for an image cannot
// change during the stage: nothing in it trains and its BatchNorm layers
// use stored statistics.
func (r *run) cacheValid() bool {
	mode := r.m.BNMode()
	return r.m.BackboneFrozen() && (mode == "frozen" || mode == "adapt")
}

// stageFeatures holds backbone features that stay valid for a stage.
type stageFeatures struct {
	train, val *torch.Tensor // rows in loader order; nil when not cached
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
}

func (f *stageFeatures) free(m *Model) {
	f.train.Free()
	f.val.Free()
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
	if p.Cache == "none" {
		return f, nil
	}
	if f.val, f.valRows, err = r.features(ctx, r.valLoader); err != nil {
		return nil, fmt.Errorf("caching validation features: %w", err)
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
		f.rowOf = make([]int, len(r.d.Train))
		row := 0
		for k, i := range r.d.Train {
			f.rowOf[k] = -1
			if row < len(f.trainRows) && f.trainRows[row] == i {
				f.rowOf[k] = row
				row++
			}
		}
	}
	r.info("stage %s: backbone frozen with fixed BatchNorm: %s features computed once and reused every epoch", p.Name, p.Cache)
	return f, nil
}

// features runs the frozen backbone over every batch of loader and keeps
// the head's inputs, in loader order, with the dataset index of each row.
func (r *run) features(ctx context.Context, loader *data.BatchLoader) (*torch.Tensor, []int, error) {
	var (
		parts []*torch.Tensor
		rows  []int
	)
	defer func() {
		for _, p := range parts {
			p.Free()
		}
	}()
	r.m.Train(false)
	err := torch.NoGrad(func() error {
		for b, err := range loader.Epoch(ctx, 0) {
			if err != nil {
				return err
			}
			s := torch.NewScope()
			x, err := r.at.input(b.Images)
			var f *torch.Tensor
			if err == nil {
				f, err = r.m.FrozenFeatures(x)
			}
			if err == nil {
				parts = append(parts, f.Keep())
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
	if err != nil {
		return nil, nil, err
	}
	if len(parts) == 0 {
		return nil, nil, errors.New("no image could be loaded")
	}
	out, err := torch.Cat(parts, 0)
	if err != nil {
		return nil, nil, err
	}
	return out.Keep(), rows, nil
}

// trainBatch is one training batch: images (or cached features) and
// labels.
type trainBatch struct {
	x, feats, y *torch.Tensor
	n           int
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
			if feats.train != nil {
				order, bounds := lp.trainLoader.Order(loaderEpoch), lp.trainLoader.Bounds()
				for ; pos < perPass && g < last; pos, g = pos+1, g+1 {
					idx := make([]int64, 0, bounds[pos][1]-bounds[pos][0])
					labels := make([]int64, 0, cap(idx))
					for _, k := range order[bounds[pos][0]:bounds[pos][1]] {
						row := feats.rowOf[k]
						if row < 0 { // skipped: not decoded
							continue
						}
						idx = append(idx, int64(row))
						labels = append(labels, int64(lp.d.TrainSet.Samples[lp.d.Train[k]].Label))
					}
					b, err := lp.gatherFeatures(feats.train, idx, labels)
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

func (lp *loop) gatherFeatures(all *torch.Tensor, idx, labels []int64) (trainBatch, error) {
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
	return trainBatch{feats: f.Keep(), y: y.Keep(), n: len(idx)}, nil
}
