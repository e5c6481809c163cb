package nn

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// BatchNormConfig describes a batch normalisation layer. Momentum nil
// means a cumulative moving average (PyTorch's momentum=None, what AdaBN
// wants); the constructors' default is 0.1.
type BatchNormConfig struct {
	NumFeatures       int64
	Eps               float64
	Momentum          *float64
	Affine            bool
	TrackRunningStats bool
}

// DefaultBatchNorm returns PyTorch's defaults for n features: eps 1e-5,
// momentum 0.1, affine, tracking running statistics.
func DefaultBatchNorm(n int64) BatchNormConfig {
	m := 0.1
	return BatchNormConfig{NumFeatures: n, Eps: 1e-5, Momentum: &m, Affine: true, TrackRunningStats: true}
}

// BatchNorm is torch.nn.BatchNorm1d or BatchNorm2d: parameters "weight"
// and "bias" (if affine), buffers "running_mean", "running_var" and
// "num_batches_tracked" (if tracking). In training mode it normalises with
// the batch's statistics and updates the running ones; in eval mode it
// uses the running ones. The mode is the module's own (SetTraining, Train,
// TrainWhere), independent of whether its parameters require grad.
type BatchNorm struct {
	ModuleBase
	Config BatchNormConfig
	// Observe, when set, is called with every input before it is
	// normalised, in either mode: how a measurement sees what the layer
	// receives inside a network's own forward pass (finetune/shift's
	// BatchNorm shift), whatever the network. It must not change x or
	// keep it past the call; an error ends the forward pass.
	Observe func(x *torch.Tensor) error
	inputND []int
	kind    string
}

// NewBatchNorm2d makes a BatchNorm over (N, C, H, W) inputs.
func NewBatchNorm2d(c BatchNormConfig) (*BatchNorm, error) {
	return newBatchNorm(c, "BatchNorm2d", 4)
}

// NewBatchNorm1d makes a BatchNorm over (N, C) or (N, C, L) inputs.
func NewBatchNorm1d(c BatchNormConfig) (*BatchNorm, error) {
	return newBatchNorm(c, "BatchNorm1d", 2, 3)
}

func newBatchNorm(c BatchNormConfig, kind string, dims ...int) (*BatchNorm, error) {
	if c.NumFeatures <= 0 {
		return nil, fmt.Errorf("nn: %s: num_features must be positive, got %d", kind, c.NumFeatures)
	}
	m := &BatchNorm{Config: c, inputND: dims, kind: kind}
	m.training = true
	n := []int64{c.NumFeatures}
	if c.Affine {
		w, err := torch.Ones(n)
		if err != nil {
			return nil, err
		}
		b, err := torch.Zeros(n)
		if err != nil {
			return nil, err
		}
		if err := m.RegisterParameter("weight", w); err != nil {
			return nil, err
		}
		if err := m.RegisterParameter("bias", b); err != nil {
			return nil, err
		}
	}
	if c.TrackRunningStats {
		mean, err := torch.Zeros(n)
		if err != nil {
			return nil, err
		}
		v, err := torch.Ones(n)
		if err != nil {
			return nil, err
		}
		nbt, err := torch.Zeros(nil, torch.Int64)
		if err != nil {
			return nil, err
		}
		for _, b := range []Named[*torch.Tensor]{{"running_mean", mean}, {"running_var", v}, {"num_batches_tracked", nbt}} {
			if err := m.RegisterBuffer(b.Name, b.Value); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Forward normalises x as torch.nn.modules.batchnorm._BatchNorm.forward.
func (m *BatchNorm) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	nd := x.Dim()
	ok := false
	for _, d := range m.inputND {
		ok = ok || d == nd
	}
	if !ok {
		return nil, fmt.Errorf("nn: %s: expected %v-d input, got %d-d", m.kind, m.inputND, nd)
	}
	if m.Observe != nil {
		if err := m.Observe(x); err != nil {
			return nil, err
		}
	}
	factor := 0.0
	if m.Config.Momentum != nil {
		factor = *m.Config.Momentum
	}
	runMean, runVar := m.Buffer("running_mean"), m.Buffer("running_var")
	if m.training && m.Config.TrackRunningStats {
		nbt := m.Buffer("num_batches_tracked")
		if err := torch.NoGrad(func() error { return nbt.AddInt_(1) }); err != nil {
			return nil, err
		}
		if m.Config.Momentum == nil {
			n, err := nbt.Item()
			if err != nil {
				return nil, err
			}
			factor = 1 / n
		}
	}
	useBatch := m.training || (runMean == nil && runVar == nil)
	if m.training && !m.Config.TrackRunningStats {
		runMean, runVar = nil, nil
	}
	return torch.BatchNorm(x, m.Parameter("weight"), m.Parameter("bias"), runMean, runVar, useBatch, factor, m.Config.Eps)
}
