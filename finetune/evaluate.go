package finetune

import (
	"context"
	"errors"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/vision/data"
)

// evaluate runs the model in evaluation mode over loader (or what the
// stage cached of its images: the head's inputs, rows of features, or
// the fixed prefix's activations, rows of feature maps) and returns the
// plain cross entropy, accuracy and confusion, with every image's result.
func (r *run) evaluate(ctx context.Context, loader *data.BatchLoader, cached *torch.Tensor, set *data.Dataset) (*Evaluation, error) {
	if set == nil {
		set = r.d.ValSet
	}
	r.m.Train(false)
	defer r.m.Train(true)
	if cached == nil {
		// The whole backbone, fused, in the run's frozen type: the
		// fastest form of what evaluation mode computes.
		restore, err := r.m.useFusedForEval(torch.ChannelsLast, r.at.frozenType())
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	conf := NewConfusion(r.d.Classes)
	var lossSum float64
	var images []ImageResult
	offset := int64(0)
	err := torch.NoGrad(func() error {
		for b, err := range loader.Epoch(ctx, 0) {
			if err != nil {
				return err
			}
			err := func() error {
				defer b.Free()
				s := torch.NewScope()
				defer s.Close()
				n := int64(len(b.Indices))
				var logits *torch.Tensor
				var err error
				if cached != nil {
					f, err := cached.Narrow(0, offset, n)
					if err != nil {
						return err
					}
					if f.Dim() == 4 { // the fixed prefix's activations: the layers after it run
						if f, err = r.at.input(f); err != nil {
							return err
						}
						if f, err = r.m.TrainFromPrefix(f); err != nil {
							return err
						}
					}
					logits, err = r.m.Head.Forward(f)
					if err != nil {
						return err
					}
				} else {
					x, err := r.at.input(b.Images)
					if err != nil {
						return err
					}
					f, err := r.m.FrozenFeatures(x)
					if err != nil {
						return err
					}
					if logits, err = r.m.Head.Forward(f); err != nil {
						return err
					}
				}
				offset += n
				y, err := r.at.labels(b.Labels)
				if err != nil {
					return err
				}
				loss, err := torch.CrossEntropy(logits, y, torch.LossOptions{Reduction: torch.ReduceSum})
				if err != nil {
					return err
				}
				v, err := loss.Item()
				if err != nil {
					return err
				}
				lossSum += v
				pred, err := logits.Argmax(1, false)
				if err != nil {
					return err
				}
				pv, err := pred.Int64s()
				if err != nil {
					return err
				}
				yv, err := b.Labels.Int64s()
				if err != nil {
					return err
				}
				conf.Add(yv, pv)
				batch, err := imageResults(set, b.Indices, yv, pv, logits)
				images = append(images, batch...)
				return err
			}()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	n := conf.Total()
	if n == 0 {
		return nil, errors.New("no images to evaluate")
	}
	return &Evaluation{Loss: lossSum / float64(n), Accuracy: conf.Accuracy(), Confusion: conf, Images: images}, nil
}
