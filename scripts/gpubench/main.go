// Command gpubench measures ResNet training throughput through the torch
// bindings: synthetic images, cross-entropy, SGD with momentum, and by
// default bfloat16 autocast and the channels-last layout on CUDA. bench.py
// beside it runs PyTorch's own eager loop with the same settings, and
// scripts/gpu-check.sh runs both. It prints one line:
//
//	go: resnet50, batch 256 at 224, bf16, channels_last, cuda:0: 2500.0 images/s (30 steps in 3.07 s, loss 6.912)
//
// Usage:
//
//	gpubench [-device auto] [-batch 256] [-size 224] [-amp bf16|fp16|off] [-channels-last=true] [-warmup 10] [-steps 30]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/amp"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/torch/optim"
	"github.com/finetune-go/finetune/vision/models"
)

// config is one benchmark run.
type config struct {
	device       string
	arch         string
	classes      int64
	batch        int64
	size         int64
	amp          string
	channelsLast bool
	warmup       int
	steps        int
}

func main() {
	var c config
	flag.StringVar(&c.device, "device", "auto", "auto, cpu, cuda or cuda:N")
	flag.StringVar(&c.arch, "arch", "resnet50", "architecture")
	flag.Int64Var(&c.classes, "classes", 1000, "classifier outputs")
	flag.Int64Var(&c.batch, "batch", 256, "images per step")
	flag.Int64Var(&c.size, "size", 224, "image height and width")
	flag.StringVar(&c.amp, "amp", "bf16", "mixed precision: bf16, fp16 (with loss scaling) or off")
	flag.BoolVar(&c.channelsLast, "channels-last", true, "channels-last layout for images and weights")
	flag.IntVar(&c.warmup, "warmup", 10, "untimed steps first")
	flag.IntVar(&c.steps, "steps", 30, "timed steps")
	flag.Parse()
	line, err := run(c, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpubench:", err)
		os.Exit(1)
	}
	fmt.Println(line)
}

// run trains c.warmup+c.steps steps and returns the report line; it logs
// the device choice to log.
func run(c config, log io.Writer) (string, error) {
	if c.steps < 1 || c.warmup < 0 {
		return "", errors.New("want -steps >= 1 and -warmup >= 0")
	}
	var dtype torch.DType
	switch c.amp {
	case "bf16":
		dtype = torch.BFloat16
	case "fp16":
		dtype = torch.Float16
	case "off":
	default:
		return "", fmt.Errorf("-amp %q: want bf16, fp16 or off", c.amp)
	}
	dev, msg, err := torch.SelectDevice(c.device)
	if err != nil {
		return "", err
	}
	fmt.Fprintln(log, "gpubench:", msg)
	torch.SetCuDNNBenchmark(true)
	torch.ManualSeed(0)

	m, err := models.New(c.arch, c.classes)
	if err != nil {
		return "", err
	}
	defer nn.Free(m)
	format, layout := torch.ContiguousFormat, "contiguous"
	if c.channelsLast {
		format, layout = torch.ChannelsLast, "channels_last"
	}
	if err := nn.To(m, dev, format); err != nil {
		return "", err
	}
	var params []*torch.Tensor
	for _, p := range nn.Trainable(m) {
		params = append(params, p.Value)
	}
	opt, err := optim.NewSGD(optim.ParamGroup{Params: params, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4})
	if err != nil {
		return "", err
	}
	var scaler *amp.GradScaler
	if c.amp == "fp16" {
		if scaler, err = amp.NewGradScaler(amp.ScalerConfig{}); err != nil {
			return "", err
		}
	}
	x0, err := torch.Randn([]int64{c.batch, 3, c.size, c.size}, dev)
	if err != nil {
		return "", err
	}
	x, err := x0.ContiguousAs(format)
	x0.Free()
	if err != nil {
		return "", err
	}
	defer x.Free()
	y, err := torch.Randint(0, c.classes, []int64{c.batch}, dev)
	if err != nil {
		return "", err
	}
	defer y.Free()

	t := trainer{m: m, opt: opt, scaler: scaler, dev: dev, amp: c.amp != "off", dtype: dtype}
	for range c.warmup {
		if _, err := t.step(x, y, false); err != nil {
			return "", fmt.Errorf("warm-up: %w", err)
		}
	}
	if err := t.sync(); err != nil {
		return "", err
	}
	start := time.Now()
	var loss float64
	for i := range c.steps {
		if loss, err = t.step(x, y, i == c.steps-1); err != nil {
			return "", err
		}
	}
	if err := t.sync(); err != nil {
		return "", err
	}
	secs := time.Since(start).Seconds()
	return fmt.Sprintf("go: %s, batch %d at %d, %s, %s, %v: %.1f images/s (%d steps in %.2f s, loss %.3f)",
		c.arch, c.batch, c.size, c.amp, layout, dev, float64(c.batch)*float64(c.steps)/secs, c.steps, secs, loss), nil
}

// trainer runs training steps.
type trainer struct {
	m      *models.ResNet
	opt    *optim.SGD
	scaler *amp.GradScaler
	dev    torch.Device
	amp    bool
	dtype  torch.DType
}

// step runs one training step and, when read is set, returns the loss,
// which waits for the step to finish.
func (t *trainer) step(x, y *torch.Tensor, read bool) (float64, error) {
	var v float64
	err := torch.WithScope(func() error {
		var loss *torch.Tensor
		forward := func() error {
			logits, err := t.m.Forward(x)
			if err != nil {
				return err
			}
			loss, err = torch.CrossEntropy(logits, y, torch.LossOptions{})
			return err
		}
		var err error
		if t.amp {
			err = torch.Autocast(t.dev.Type, t.dtype, forward)
		} else {
			err = forward()
		}
		if err != nil {
			return err
		}
		if t.scaler != nil {
			scaled, err := t.scaler.Scale(loss)
			if err != nil {
				return err
			}
			if err := scaled.Backward(); err != nil {
				return err
			}
			if _, err := t.scaler.Step(t.opt); err != nil {
				return err
			}
			if err := t.scaler.Update(); err != nil {
				return err
			}
		} else {
			if err := loss.Backward(); err != nil {
				return err
			}
			if err := t.opt.Step(); err != nil {
				return err
			}
		}
		if err := t.opt.ZeroGrad(); err != nil {
			return err
		}
		if read {
			v, err = loss.Item()
		}
		return err
	})
	return v, err
}

// sync waits for the device's queued work.
func (t *trainer) sync() error {
	if t.dev.Type != torch.DeviceCUDA {
		return nil
	}
	return torch.CUDASynchronize(t.dev.Index)
}
