// Package amp holds the loss scaling that float16 mixed precision needs:
// GradScaler, after torch.cuda.amp.GradScaler. Autocast itself is
// torch.Autocast; bfloat16 has float32's range and trains without scaling.
//
// A float16 training step with a scaler reads:
//
//	err := torch.Autocast(torch.DeviceCUDA, torch.Float16, func() error {
//		loss, err = model.Loss(x, y)
//		return err
//	})
//	scaled, _ := scaler.Scale(loss)
//	scaled.Backward()
//	scaler.Step(opt) // unscales the gradients; skips the step on inf/NaN
//	scaler.Update()  // backs the scale off after a skip, grows it after a run of good steps
//	opt.ZeroGrad()
package amp

import (
	"errors"
	"fmt"
	"math"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/optim"
)

// Optimizer is what a GradScaler needs of an optimizer: its parameters,
// whose gradients it unscales, and Step. The optimizers of package optim
// implement it.
type Optimizer interface {
	Step() error
	Groups() []*optim.ParamGroup
}

// ScalerConfig holds a GradScaler's hyper-parameters. Zero values take
// PyTorch's defaults.
type ScalerConfig struct {
	// InitScale is the first scale factor (65536).
	InitScale float64
	// GrowthFactor multiplies the scale after GrowthInterval steps in a
	// row without inf or NaN gradients (2).
	GrowthFactor float64
	// BackoffFactor multiplies the scale after a step with inf or NaN
	// gradients (0.5).
	BackoffFactor float64
	// GrowthInterval is the number of good steps between growths (2000).
	GrowthInterval int
}

func (c ScalerConfig) withDefaults() ScalerConfig {
	if c.InitScale == 0 {
		c.InitScale = 65536
	}
	if c.GrowthFactor == 0 {
		c.GrowthFactor = 2
	}
	if c.BackoffFactor == 0 {
		c.BackoffFactor = 0.5
	}
	if c.GrowthInterval == 0 {
		c.GrowthInterval = 2000
	}
	return c
}

// GradScaler scales the loss so that float16 gradients do not underflow,
// unscales the gradients before the optimizer sees them, skips steps whose
// gradients hold inf or NaN, and adapts the scale, exactly as
// torch.cuda.amp.GradScaler:
//
//	after a step with inf/NaN gradients: scale *= BackoffFactor, count = 0
//	after a good step: count++; when count == GrowthInterval:
//	    scale *= GrowthFactor (unless that overflows float32), count = 0
//
// The scale is a float32, as PyTorch's scale tensor is, and the same
// products are rounded the same way. Gradients on CUDA are unscaled and
// checked by ATen's fused _amp_foreach_non_finite_check_and_unscale_; those
// elsewhere by ordinary operators (libtorch 1.13 has no CPU kernel for it),
// with the same results. Each Step reads one flag back from the device.
//
// A GradScaler is used from one goroutine.
type GradScaler struct {
	cfg           ScalerConfig
	scale         float32
	growthTracker int
	states        map[Optimizer]*optState
}

type stage int

const (
	ready stage = iota
	unscaled
	stepped
)

// optState is what the scaler knows of one optimizer since the last Update.
type optState struct {
	stage stage
	// checked reports whether any gradient was unscaled and checked.
	checked  bool
	foundInf bool
}

// NewGradScaler returns a scaler with configuration c.
func NewGradScaler(c ScalerConfig) (*GradScaler, error) {
	c = c.withDefaults()
	switch {
	case !validScale(c.InitScale):
		return nil, fmt.Errorf("amp: invalid InitScale %v, want a positive float32", c.InitScale)
	case !(c.GrowthFactor > 1) || math.IsInf(c.GrowthFactor, 0):
		return nil, fmt.Errorf("amp: invalid GrowthFactor %v, want > 1", c.GrowthFactor)
	case !(c.BackoffFactor > 0 && c.BackoffFactor < 1):
		return nil, fmt.Errorf("amp: invalid BackoffFactor %v, want it in (0, 1)", c.BackoffFactor)
	case c.GrowthInterval < 1:
		return nil, fmt.Errorf("amp: invalid GrowthInterval %d, want >= 1", c.GrowthInterval)
	}
	return &GradScaler{cfg: c, scale: float32(c.InitScale), states: map[Optimizer]*optState{}}, nil
}

// Config returns the scaler's configuration, defaults filled in.
func (s *GradScaler) Config() ScalerConfig { return s.cfg }

// ScaleFactor returns the current scale, as get_scale().
func (s *GradScaler) ScaleFactor() float64 { return float64(s.scale) }

// Scale returns loss times the current scale, for Backward. As in PyTorch
// the factor is a one-element float32 tensor on loss's device, so the
// result is float32 of shape [1] for a 0-d float16 or float32 loss.
func (s *GradScaler) Scale(loss *torch.Tensor) (*torch.Tensor, error) {
	f, err := torch.Full([]int64{1}, float64(s.scale), torch.Float32, loss.Device())
	if err != nil {
		return nil, fmt.Errorf("amp: scale: %w", err)
	}
	defer f.Free()
	out, err := loss.Mul(f)
	if err != nil {
		return nil, fmt.Errorf("amp: scale: %w", err)
	}
	return out, nil
}

func (s *GradScaler) state(opt Optimizer) *optState {
	st := s.states[opt]
	if st == nil {
		st = &optState{}
		s.states[opt] = st
	}
	return st
}

// Unscale divides the gradients of opt's parameters by the scale in place
// and records whether any holds inf or NaN, as unscale_. Step calls it
// when it has not been called since the last Update; call it before Step
// to clip or inspect the true gradients.
func (s *GradScaler) Unscale(opt Optimizer) error {
	st := s.state(opt)
	switch st.stage {
	case unscaled:
		return errors.New("amp: Unscale has already been called on this optimizer since the last Update")
	case stepped:
		return errors.New("amp: Unscale called after Step; call Update first")
	}
	var (
		devices []torch.Device
		grads   = map[torch.Device][]*torch.Tensor{}
	)
	err := torch.WithScope(func() error {
		for _, g := range opt.Groups() {
			for _, p := range g.Params {
				grad, err := p.Grad()
				if err != nil {
					return err
				}
				if grad == nil {
					continue
				}
				if grad.DType() == torch.Float16 {
					return errors.New("attempting to unscale float16 gradients: keep the parameters in float32 and let autocast cast")
				}
				d := grad.Device()
				if _, ok := grads[d]; !ok {
					devices = append(devices, d)
				}
				grads[d] = append(grads[d], grad)
			}
		}
		inv := float32(1 / float64(s.scale))
		return torch.NoGrad(func() error {
			for _, d := range devices {
				found, err := unscaleGrads(grads[d], inv, d)
				if err != nil {
					return fmt.Errorf("on %v: %w", d, err)
				}
				st.foundInf = st.foundInf || found
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("amp: unscale: %w", err)
	}
	st.checked = len(devices) > 0
	st.stage = unscaled
	return nil
}

// unscaleGrads multiplies grads, all on device d, by inv in place and
// reports whether any element was inf or NaN.
func unscaleGrads(grads []*torch.Tensor, inv float32, d torch.Device) (bool, error) {
	if d.Type == torch.DeviceCUDA {
		found, err := torch.Zeros(nil, torch.Float32, d)
		if err != nil {
			return false, err
		}
		invT, err := torch.Full([]int64{1}, float64(inv), torch.Float32, d)
		if err != nil {
			return false, err
		}
		if _, err := torch.CallOp("aten::_amp_foreach_non_finite_check_and_unscale_", "", grads, found, invT); err != nil {
			return false, err
		}
		v, err := found.Item()
		return v != 0, err
	}
	invT, err := torch.Full(nil, float64(inv), torch.Float32, d)
	if err != nil {
		return false, err
	}
	found := false
	for _, g := range grads {
		finite, err := g.IsFinite()
		if err != nil {
			return false, err
		}
		ok, err := finite.All()
		if err != nil {
			return false, err
		}
		found = found || !ok
		if err := g.Mul_(invT); err != nil {
			return false, err
		}
	}
	return found, nil
}

// Step unscales opt's gradients if Unscale has not, then runs opt.Step
// unless a gradient holds inf or NaN. It reports whether the optimizer
// stepped. Call Update after the Steps of every optimizer.
func (s *GradScaler) Step(opt Optimizer) (bool, error) {
	st := s.state(opt)
	if st.stage == stepped {
		return false, errors.New("amp: Step has already been called on this optimizer since the last Update")
	}
	if st.stage == ready {
		if err := s.Unscale(opt); err != nil {
			return false, err
		}
	}
	if !st.checked {
		return false, errors.New("amp: step: no parameter of the optimizer has a gradient")
	}
	st.stage = stepped
	if st.foundInf {
		return false, nil
	}
	if err := opt.Step(); err != nil {
		return false, err
	}
	return true, nil
}

// Update adapts the scale to the Steps since the last Update: it backs off
// if any optimizer met inf or NaN gradients and counts a good step
// otherwise, growing the scale every GrowthInterval good steps.
func (s *GradScaler) Update() error {
	checked, foundInf := false, false
	for _, st := range s.states {
		checked = checked || st.checked
		foundInf = foundInf || st.foundInf
	}
	if !checked {
		return errors.New("amp: Update without a Step or Unscale that checked gradients")
	}
	// The products are float32 times float64 rounded to float32, as in
	// ATen's _amp_update_scale_ kernel.
	if foundInf {
		s.scale = float32(float64(s.scale) * s.cfg.BackoffFactor)
		s.growthTracker = 0
	} else if s.growthTracker+1 == s.cfg.GrowthInterval {
		if grown := float32(float64(s.scale) * s.cfg.GrowthFactor); !math.IsInf(float64(grown), 0) {
			s.scale = grown
		}
		s.growthTracker = 0
	} else {
		s.growthTracker++
	}
	clear(s.states)
	return nil
}

// ScalerState is the part of a GradScaler that a checkpoint saves, as the
// "scale" and "_growth_tracker" entries of PyTorch's state_dict.
type ScalerState struct {
	Scale         float64
	GrowthTracker int
}

// State returns the scaler's state for a checkpoint.
func (s *GradScaler) State() ScalerState {
	return ScalerState{Scale: float64(s.scale), GrowthTracker: s.growthTracker}
}

// LoadState restores a state that State returned.
func (s *GradScaler) LoadState(st ScalerState) error {
	if !validScale(st.Scale) {
		return fmt.Errorf("amp: invalid scale %v in scaler state, want a positive float32", st.Scale)
	}
	if st.GrowthTracker < 0 || st.GrowthTracker >= s.cfg.GrowthInterval {
		return fmt.Errorf("amp: invalid growth tracker %d in scaler state, want it in [0, %d)", st.GrowthTracker, s.cfg.GrowthInterval)
	}
	s.scale, s.growthTracker = float32(st.Scale), st.GrowthTracker
	clear(s.states)
	return nil
}

// validScale reports whether v is a positive, finite float32.
func validScale(v float64) bool {
	f := float32(v)
	return f > 0 && !math.IsInf(float64(f), 0)
}
