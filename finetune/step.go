package finetune

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/finetune-go/finetune/internal/seed"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

func (lp *loop) trainEpoch(ctx context.Context, p stagePlan, feats *stageFeatures, total int) (EpochMetrics, error) {
	start := time.Now()
	em := EpochMetrics{Stage: p.Name, Epoch: lp.state.Epoch + 1}
	part := &lp.state.Partial
	lp.m.Train(true)
	lp.reseedEpoch(p)
	for b, err := range lp.epochBatches(lp.dp.loaderContext(ctx), p, feats) {
		if err != nil {
			return em, fmt.Errorf("data: %w", err)
		}
		lr := lp.applySchedule(p, total)
		tot, err := lp.step(ctx, b, feats.trainFrozen)
		if b.feats != nil || b.acts != nil {
			b.feats.Free()
			b.acts.Free()
			b.y.Free()
		}
		if err != nil {
			return em, err
		}
		if math.IsNaN(tot.loss) || math.IsInf(tot.loss, 0) {
			return em, fmt.Errorf("stage %s, epoch %d, step %d: %w (%v); %s",
				p.Name, em.Epoch, lp.state.StepInEpoch+1, ErrNotFinite, tot.loss, lp.lastGood())
		}
		part.LossSum += tot.loss * float64(tot.n)
		part.Correct += tot.correct
		part.Seen += int64(tot.n)
		lp.state.StepInEpoch++
		lp.state.Step++
		elapsed := part.Seconds + time.Since(start).Seconds()
		lp.ev.emit(Event{Kind: EventStep, Stage: p.Name, Epoch: em.Epoch, Step: lp.state.StepInEpoch, Steps: p.StepsPerEpoch,
			Loss: part.LossSum / float64(part.Seen), LR: lr, ImagesPerSecond: float64(part.Seen) / math.Max(elapsed, 1e-9)})
		if err := lp.dp.stopped(ctx, tot); err != nil && lp.state.StepInEpoch < p.StepsPerEpoch {
			part.Seconds += time.Since(start).Seconds()
			return em, lp.interrupt(p, err)
		}
	}
	part.Seconds += time.Since(start).Seconds()
	if part.Seen == 0 {
		return em, fmt.Errorf("stage %s: the epoch had no training batch", p.Name)
	}
	em.TrainLoss = part.LossSum / float64(part.Seen)
	em.TrainStepAccuracy = float64(part.Correct) / float64(part.Seen)
	em.Seconds = part.Seconds
	em.LR = lp.baseLR[0] * LRFactor(lp.cfg.Train, max(lp.state.Step-1, 0), total, p.StepsPerEpoch)
	return em, nil
}

// reseedEpoch makes the epoch's random draws (dropout masks, mixup) a
// function of the seed and the epoch, so a resumed run draws the same.
func (lp *loop) reseedEpoch(p stagePlan) {
	if lp.state.StepInEpoch > 0 {
		return // resumed mid-epoch: the generator state came from the checkpoint
	}
	s := seed.Mix(lp.cfg.Seed, uint64(p.index), uint64(lp.state.Epoch))
	_ = lp.gen.Seed(s)
	torch.ManualSeed(s)
}

func (lp *loop) applySchedule(p stagePlan, total int) float64 {
	f := LRFactor(lp.cfg.Train, lp.state.Step, total, p.StepsPerEpoch)
	groups := lp.opt.Groups()
	for i, g := range groups {
		g.LR = lp.baseLR[i] * f
	}
	return groups[0].LR
}

// step runs one optimisation step and returns the batch's mean loss and
// its number of correct predictions, summed over a data-parallel group.
func (lp *loop) step(ctx context.Context, b trainBatch, backboneFrozen bool) (stepTotals, error) {
	s := torch.NewScope()
	defer s.Close()
	y, err := lp.at.labels(b.y)
	if err != nil {
		return stepTotals{}, err
	}
	var logits *torch.Tensor
	mixed, err := lp.mixBatch(b, y)
	if err != nil {
		return stepTotals{}, err
	}
	var loss *torch.Tensor
	err = lp.at.compute(func() error {
		feats := b.feats
		switch {
		case b.acts != nil:
			// Activations reach the model as images do: where and in the
			// layout it computes.
			h, err := lp.at.input(b.acts)
			if err != nil {
				return err
			}
			if feats, err = lp.m.TrainFromPrefix(h); err != nil {
				return err
			}
		case feats == nil:
			x, err := lp.at.input(mixed.x)
			if err != nil {
				return err
			}
			if backboneFrozen {
				feats, err = lp.m.FrozenFeatures(x)
			} else {
				feats, err = lp.m.TrainFeatures(x)
			}
			if err != nil {
				return err
			}
		case mixed.x != nil:
			feats = mixed.x
		}
		var err error
		if logits, err = lp.m.Head.Forward(feats); err != nil {
			return err
		}
		// The loss in float32 whatever the autocast type, as PyTorch's
		// autocast does for cross entropy.
		if logits, err = logits.ToDType(torch.Float32); err != nil {
			return err
		}
		loss, err = lp.loss(logits, y, mixed)
		return err
	})
	if err != nil {
		return stepTotals{}, err
	}
	value, err := loss.Item()
	if err != nil {
		return stepTotals{}, err
	}
	pred, err := logits.Argmax(1, false)
	if err != nil {
		return stepTotals{}, err
	}
	hits, err := pred.Eq(y)
	if err != nil {
		return stepTotals{}, err
	}
	sum, err := hits.Sum()
	if err != nil {
		return stepTotals{}, err
	}
	correct, err := sum.Item()
	if err != nil {
		return stepTotals{}, err
	}
	tot, err := lp.dp.totals(ctx, value, int64(correct), b.n)
	if err != nil {
		return stepTotals{}, err
	}
	if math.IsNaN(tot.loss) || math.IsInf(tot.loss, 0) {
		return tot, nil
	}
	if err := lp.backwardAndStep(loss); err != nil {
		return stepTotals{}, err
	}
	if err := lp.opt.ZeroGrad(); err != nil {
		return stepTotals{}, err
	}
	return tot, nil
}

func (lp *loop) loss(logits, y *torch.Tensor, m mixedBatch) (*torch.Tensor, error) {
	o := torch.LossOptions{Weight: lp.classWeights, LabelSmoothing: lp.cfg.Train.LabelSmoothing}
	l, err := torch.CrossEntropy(logits, y, o)
	if err != nil || m.other == nil {
		return l, err
	}
	l2, err := torch.CrossEntropy(logits, m.other, o)
	if err != nil {
		return nil, err
	}
	a, err := l.MulScalar(m.lambda)
	if err != nil {
		return nil, err
	}
	return a.AddScaled(l2, 1-m.lambda)
}

// clipGradNorm scales the gradients so their global L2 norm is at most
// maxNorm, as torch.nn.utils.clip_grad_norm_.
// backwardAndStep computes the gradients of loss and updates the
// parameters, through the loss scaler under fp16.
func (lp *loop) backwardAndStep(loss *torch.Tensor) error {
	scaler := lp.at.scaler
	if scaler != nil {
		var err error
		if loss, err = scaler.Scale(loss); err != nil {
			return err
		}
	}
	if err := loss.Backward(); err != nil {
		return err
	}
	if err := lp.dp.reduceGradients(nn.Trainable(lp.m)); err != nil {
		return err
	}
	if scaler != nil && lp.cfg.Train.GradClip > 0 {
		if err := scaler.Unscale(lp.opt); err != nil {
			return err
		}
	}
	if lp.cfg.Train.GradClip > 0 {
		if err := clipGradNorm(nn.Trainable(lp.m), lp.cfg.Train.GradClip); err != nil {
			return err
		}
	}
	if scaler == nil {
		return lp.opt.Step()
	}
	if _, err := scaler.Step(lp.opt); err != nil {
		return err
	}
	return scaler.Update()
}

// clipGradNorm scales the gradients so their global L2 norm is at most
// maxNorm, as torch.nn.utils.clip_grad_norm_.
func clipGradNorm(params []nn.Named[*torch.Tensor], maxNorm float64) error {
	var grads []*torch.Tensor
	sq := 0.0
	for _, p := range params {
		g, err := p.Value.Grad()
		if err != nil {
			return err
		}
		if g == nil {
			continue
		}
		grads = append(grads, g)
		n, err := g.Pow(2)
		if err != nil {
			return err
		}
		s, err := n.Sum()
		if err != nil {
			return err
		}
		v, err := s.Item()
		if err != nil {
			return err
		}
		sq += v
	}
	coef := maxNorm / (math.Sqrt(sq) + 1e-6)
	if coef >= 1 {
		return nil
	}
	return torch.NoGrad(func() error {
		for _, g := range grads {
			if err := g.MulScalar_(coef); err != nil {
				return err
			}
		}
		return nil
	})
}
