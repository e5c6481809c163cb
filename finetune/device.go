package finetune

import (
	"fmt"
	"slices"

	"golang.org/x/sys/cpu"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/amp"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
)

// placement is where and how a run computes: the device, the autocast
// type of the layers that train (0 for float32), the type of the fused
// copy of the frozen backbone (0 for float32; see Model.UseFused), loss
// scaling, and the memory format.
type placement struct {
	device   torch.Device
	autocast torch.DType
	frozen   torch.DType
	scaler   *amp.GradScaler
	format   torch.MemoryFormat
	// shard picks this rank's share of the training order; nil alone.
	shard func(order []int) []int
}

// placePlan decides device, train.precision and train.channels_last
// into plan.
func (r *run) placePlan(plan *Plan) error {
	c := r.cfg
	dev, msg, err := torch.SelectDevice(c.Device)
	if err != nil {
		return fmt.Errorf("device: %w", err)
	}
	plan.Device = dev.String()
	if c.Device == "" || c.Device == "auto" {
		r.decide(plan, "device", plan.Device, msg, msg)
	} else if msg != "" {
		r.info("%s", msg)
	}
	cuda := dev.Type == torch.DeviceCUDA
	plan.Precision = c.Train.Precision
	switch {
	case c.Train.Precision == "fp16" && !cuda:
		return fmt.Errorf("train.precision: fp16 needs CUDA (device is %v); use bf16 or fp32", dev)
	case c.Train.Precision == "bf16" && !cuda && cpuBF16() == "":
		r.warn("train.precision: bf16 on a CPU without bfloat16 instructions (AMX-BF16, AVX512-BF16): " +
			"the frozen backbone's convolutions are emulated, and likely slower than fp32")
	case c.Train.Precision == "auto" && cuda:
		plan.Precision = "bf16"
		r.decide(plan, "train.precision", "bf16", "bfloat16 autocast on CUDA", "")
	case c.Train.Precision == "auto":
		plan.Precision = "fp32"
		why := "float32: the CPU has no bfloat16 instructions (AMX-BF16, AVX512-BF16)"
		if isa := cpuBF16(); isa != "" && !slices.Contains(models.Archs(), c.Model.Arch) {
			why = "float32: on a CPU only a ResNet's frozen backbone computes in bfloat16 (fused), not " + c.Model.Arch + "'s"
		} else if isa != "" {
			plan.Precision = "bf16"
			why = "the CPU has " + isa + ": the frozen backbone runs in bfloat16, the layers that train in float32"
		}
		r.decide(plan, "train.precision", plan.Precision, why, "")
	}
	plan.ChannelsLast = c.Train.ChannelsLast == "on"
	if c.Train.ChannelsLast == "auto" {
		plan.ChannelsLast = cuda
		r.decide(plan, "train.channels_last", fmt.Sprint(cuda), "channels-last on CUDA only", "")
	}
	return nil
}

// cpuBF16 names the bfloat16 instructions of this CPU that libtorch
// 1.13's oneDNN runs convolutions on (brgconv:avx512_core_amx_bf16 with
// AMX), "" when it has none. The flags are CPUID's, read at run time.
func cpuBF16() string {
	switch {
	case cpu.X86.HasAMXBF16 && cpu.X86.HasAMXTile:
		return "AMX-BF16"
	case cpu.X86.HasAVX512BF16:
		return "AVX512-BF16"
	}
	return ""
}

// planPlacement is where and how plan computes.
func planPlacement(plan *Plan) (placement, error) {
	dev, err := torch.ParseDevice(plan.Device)
	if err != nil {
		return placement{}, fmt.Errorf("plan: %w", err)
	}
	p := placement{device: dev, format: torch.ContiguousFormat}
	switch plan.Precision {
	case "bf16":
		// The frozen backbone's fused copy is cast to bfloat16 once. The
		// layers that train run under autocast on CUDA only: on the CPU,
		// libtorch 1.13's autocast made a training step of ResNet50's
		// layer4 (batch 16, 14×14 input, contiguous) about 1.4 times
		// slower than float32, casting every weight in every step, and
		// its weight gradients 19 % off in relative norm (measured with
		// PyTorch on the same libtorch); they stay float32 there.
		p.frozen = torch.BFloat16
		if dev.Type == torch.DeviceCUDA {
			p.autocast = torch.BFloat16
		}
	case "fp16":
		p.autocast = torch.Float16
		if p.scaler, err = amp.NewGradScaler(amp.ScalerConfig{}); err != nil {
			return p, err
		}
	}
	if plan.ChannelsLast {
		p.format = torch.ChannelsLast
	}
	if dev.Type == torch.DeviceCUDA {
		torch.SetCuDNNBenchmark(true)
	}
	return p, nil
}

// modelPlacement is where m is: its device and memory format, in float32.
func modelPlacement(m *Model) placement {
	dev, format := m.placement()
	return placement{device: dev, format: format}
}

func (p placement) String() string {
	prec := "float32"
	if p.autocast != 0 {
		prec = p.autocast.String() + " autocast"
	}
	if p.frozen != 0 && p.frozen != p.autocast {
		prec += ", frozen backbone in " + p.frozen.String()
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

// input moves a batch of images to the device in the run's layout. It
// is the one place where images reach the model: the model's entry
// points (Model.Features, FrozenFeatures, Forward and the AdaBN pass)
// refuse a batch on another device or in another layout than their own
// (see Model.checkInput).
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

// frozenType is the type the fused copy of the frozen backbone computes
// in.
func (p placement) frozenType() torch.DType {
	if p.frozen == 0 {
		return torch.Float32
	}
	return p.frozen
}

// inference is p for a pass that runs the unfused backbone forward
// only, to measure or re-estimate its BatchNorm statistics (the shift
// measurement, AdaBN): its images go in channels-last, the layout
// oneDNN's convolutions run fastest in on the CPU, whatever the weights'
// (a contiguous model takes them: Model.checkInput asks for the layout of
// a channels-last model only). Such a pass stays float32 under bf16: on
// the reference ResNet18 of TestAdaptBNMatchesPyTorch, AdaBN under
// bfloat16 autocast moved layer4's statistics by up to a fifth of their
// scale, from one run to the next, where the features of a bfloat16
// copy move by a few percent.
func (p placement) inference() placement {
	p.format = torch.ChannelsLast
	return p
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
