package main

import (
	"context"
	"fmt"
	"os"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
)

// deviceUsage is the help of eval's and predict's --device.
const deviceUsage = "where the model runs: auto (CUDA when available), cpu, cuda or cuda:N"

// weightsUsage is the help of eval's and predict's --model.weights.
const weightsUsage = "pretrained weights `FILE` (or name) a delta checkpoint builds on, " +
	"instead of those it records (which may be elsewhere)"

// loadModel loads the model of a checkpoint onto the device spec names.
// A delta checkpoint builds on the pretrained weights it records, or on
// weights when set.
func loadModel(ctx context.Context, path, weights, device string) (*finetune.Model, finetune.Meta, error) {
	if path == "" {
		return nil, finetune.Meta{}, usagef("--checkpoint is required: a run's best.safetensors")
	}
	dev, msg, err := torch.SelectDevice(device)
	if err != nil {
		return nil, finetune.Meta{}, usagef("--device: %w", err)
	}
	hub := models.DefaultHub()
	if isTerminal(os.Stderr) {
		hub.Progress = os.Stderr
	}
	m, meta, err := finetune.LoadCheckpoint(ctx, path, finetune.LoadOptions{Hub: hub, Weights: weights})
	if err != nil {
		return nil, meta, err
	}
	if verbose {
		fmt.Fprintln(os.Stderr, msg)
	}
	if dev.Type != torch.DeviceCPU {
		if err := nn.To(m, dev, torch.PreserveFormat); err != nil {
			m.Close()
			return nil, meta, err
		}
	}
	return m, meta, nil
}

// checkFormat returns a usageError unless format is one of allowed.
func checkFormat(format string, allowed ...string) error {
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	return usagef("--format: %q is not one of %v", format, allowed)
}
