package finetune

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/amp"
	"github.com/finetune-go/finetune/torch/nn"
)

// placement is where and how a run computes: the device, the autocast
// type (0 for float32), loss scaling, and the memory format.
type placement struct {
	device   torch.Device
	autocast torch.DType
	scaler   *amp.GradScaler
	format   torch.MemoryFormat
	// shard picks this rank's share of the training order; nil alone.
	shard func(order []int) []int
}

// newPlacement resolves device, train.precision and train.channels_last.
func newPlacement(c Config) (placement, string, error) {
	dev, msg, err := torch.SelectDevice(c.Device)
	if err != nil {
		return placement{}, "", fmt.Errorf("device: %w", err)
	}
	p := placement{device: dev, format: torch.ContiguousFormat}
	cuda := dev.Type == torch.DeviceCUDA
	switch c.Train.Precision {
	case "bf16":
		p.autocast = torch.BFloat16
	case "fp16":
		if !cuda {
			return p, "", fmt.Errorf("train.precision: fp16 needs CUDA (device is %v); use bf16 or fp32", dev)
		}
		p.autocast = torch.Float16
		if p.scaler, err = amp.NewGradScaler(amp.ScalerConfig{}); err != nil {
			return p, "", err
		}
	case "auto":
		if cuda {
			p.autocast = torch.BFloat16
		}
	}
	if c.Train.ChannelsLast == "on" || c.Train.ChannelsLast == "auto" && cuda {
		p.format = torch.ChannelsLast
	}
	if cuda {
		torch.SetCuDNNBenchmark(true)
	}
	return p, msg, nil
}

func (p placement) String() string {
	prec := "float32"
	if p.autocast != 0 {
		prec = p.autocast.String() + " autocast"
	}
	layout := "contiguous"
	if p.format == torch.ChannelsLast {
		layout = "channels-last"
	}
	return fmt.Sprintf("%v, %s, %s", p.device, prec, layout)
}

// place moves m to the device in the run's layout.
func (p placement) place(m nn.Module) error {
	if p.device.Type == torch.DeviceCPU && p.format == torch.ContiguousFormat {
		return nil
	}
	return nn.To(m, p.device, p.format)
}

// input moves a batch of images to the device in the run's layout.
func (p placement) input(x *torch.Tensor) (*torch.Tensor, error) {
	var err error
	if p.device.Type != torch.DeviceCPU {
		if x, err = x.ToNonBlocking(p.device, x.DType()); err != nil {
			return nil, err
		}
	}
	if p.format == torch.ChannelsLast {
		return x.ContiguousAs(torch.ChannelsLast)
	}
	return x, nil
}

// labels moves class indices to the device.
func (p placement) labels(y *torch.Tensor) (*torch.Tensor, error) {
	if p.device.Type == torch.DeviceCPU {
		return y, nil
	}
	return y.ToNonBlocking(p.device, y.DType())
}

// compute runs f under the run's autocast, if any.
func (p placement) compute(f func() error) error {
	if p.autocast == 0 {
		return f()
	}
	return torch.Autocast(p.device.Type, p.autocast, f)
}
