package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/finetune-go/finetune/finetune/runfolder/plot"
	"github.com/finetune-go/finetune/internal/plural"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
)

func init() {
	register("lr-find", "find a learning rate: Smith's range test on the configured model and data", cmdLRFind)
}

func cmdLRFind(ctx context.Context, args []string) error {
	fs := newFlagSet("lr-find", "finetune lr-find [--config FILE | --checkpoint FILE] [--steps N] [--stage N] [--png FILE] [--json] [flags]", `
Runs Smith's learning-rate range test on the model and data a run of the
configuration would train (or on a checkpoint's model, from its weights):
one step per training batch, the rate growing exponentially from --min-lr
to --max-lr, with the configured optimizer and the stage's freeze point,
until the smoothed loss passes four times its lowest. It draws the loss
against the rate into --png (lr.png), marks the rate where the smoothed
loss falls fastest and prints it: a value for train.lr. The model's weights
are left as they were. It takes the flags of run.`)
	file := fs.String("config", "", "configuration `FILE` (YAML, JSON or TOML; default ./finetune.yaml when it exists)")
	ckpt := fs.String("checkpoint", "", "start from the weights of checkpoint `FILE`, with its configuration unless --config is given")
	steps := fs.Int("steps", 200, "the most steps to take")
	minLR := fs.Float64("min-lr", 1e-7, "the first rate")
	maxLR := fs.Float64("max-lr", 10, "the last rate")
	stage := fs.Int("stage", 1, "train as stage `N` of the recipe (1: the first) freezes")
	out := fs.String("png", "lr.png", "draw the test into `FILE`")
	asJSON := fs.Bool("json", false, "print the test's rates and losses as JSON")
	keys := fs.addConfigFlags()
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("lr-find: unexpected argument %q (data goes in --data.train)", pos[0])
	}
	src := configSource{file: *file}
	if err := src.checkpointBase(*ckpt, "--checkpoint"); err != nil {
		return err
	}
	cfg, _, err := src.load(keys)
	if err != nil {
		return err
	}
	if *stage < 1 || *stage > len(cfg.Stages) {
		return usagef("lr-find: --stage %d: the recipe has %s", *stage, plural.Count(len(cfg.Stages), "stage"))
	}
	var m *finetune.Model
	if *ckpt != "" {
		m, _, err = loadModel(ctx, *ckpt, "", cfg.Device)
	} else {
		m, err = runModel(ctx, cfg)
	}
	if err != nil {
		return err
	}
	defer m.Close()
	progress := func(e finetune.Event) {
		if e.Kind == finetune.EventStep && isTerminal(os.Stderr) && !*asJSON {
			fmt.Fprintf(os.Stderr, "\rlr-find: step %d/%d  lr %.2e  loss %.4f ", e.Step, e.Steps, e.LR, e.Loss)
		}
	}
	f, err := finetune.FindLR(ctx, m, cfg, finetune.LRFindOptions{MinLR: *minLR, MaxLR: *maxLR, Steps: *steps,
		Stage: *stage - 1, Observer: progress})
	if isTerminal(os.Stderr) && !*asJSON {
		fmt.Fprintln(os.Stderr)
	}
	if err != nil {
		return err
	}
	err = runfolder.WriteFile(*out, func(w io.Writer) error { return plot.LRFinder(w, f) })
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(false, map[string]any{"png": *out, "finding": f})
	}
	end := "the rates ran out"
	if f.Diverged {
		end = "the loss diverged"
	}
	fmt.Printf("lr-find: %d steps from %.0e (stage %s, %s), until %s\n", len(f.LRs), f.LRs[0], f.Stage, cfg.Train.Optimizer, end)
	fmt.Printf("suggested learning rate: %.2g (the smoothed loss falls fastest there): --train.lr %.2g\n", f.Suggested, f.Suggested)
	fmt.Printf("plot: %s\n", *out)
	return nil
}

// runModel builds the model a run of cfg starts from, on cfg's device.
func runModel(ctx context.Context, cfg finetune.Config) (*finetune.Model, error) {
	dev, _, err := torch.SelectDevice(cfg.Device)
	if err != nil {
		return nil, usagef("device: %w", err)
	}
	hub := models.DefaultHub()
	if isTerminal(os.Stderr) {
		hub.Progress = os.Stderr
	}
	m, err := finetune.NewRunModel(ctx, cfg, hub)
	if err != nil {
		return nil, err
	}
	if dev.Type != torch.DeviceCPU {
		if err := nn.To(m, dev, torch.PreserveFormat); err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}
