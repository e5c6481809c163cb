package main

import (
	"context"
	"os"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/internal/runfiles"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
)

func cmdRun(ctx context.Context, args []string) error {
	fs := newFlagSet("run", "finetune run [--config FILE] [--resume PATH] [flags]", `
Trains a model as configured: stage after stage of the recipe, validating
every epoch, keeping the best epoch's weights. The run folder (output.dir)
receives metrics.jsonl (an epoch per line), config.yaml (every key as used),
result.json, the checkpoints (best.safetensors, best-delta.safetensors,
last.safetensors to resume from), curves.png, confusion.png and, with
output.tensorboard, TensorBoard event files.

On a terminal each epoch shows a progress bar; elsewhere (a pipe, CI) a line
per epoch. An interrupt (Ctrl-C, SIGTERM) finishes the step, writes
last.safetensors and exits with status 130; 'finetune run --resume
RUN/last.safetensors' continues exactly where the run stopped.`)
	file := fs.String("config", "", "configuration `FILE` (YAML, JSON or TOML; default ./finetune.yaml when it exists)")
	resume := fs.String("resume", "", "continue the interrupted run of checkpoint `PATH` (its last.safetensors), "+
		"with the checkpoint's configuration unless --config is given")
	quiet := fs.Bool("quiet", false, "print only the final summary (and warnings)")
	asJSON := fs.Bool("json", false, "print JSON lines: every event, then a summary object")
	keys := fs.addConfigFlags()
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("run: unexpected argument %q (data goes in --data.train)", pos[0])
	}
	if *quiet && *asJSON {
		return usagef("run: --quiet and --json exclude each other")
	}
	src := configSource{file: *file}
	if *resume != "" && *file == "" {
		meta, err := finetune.ReadMeta(*resume)
		if err != nil {
			return usagef("--resume: %w", err)
		}
		src.base, src.what = &meta.Config, *resume
	}
	cfg, from, err := src.load(keys)
	if err != nil {
		return err
	}
	mode := modeLines
	switch {
	case *asJSON:
		mode = modeJSON
	case *quiet:
		mode = modeQuiet
	case isTerminal(os.Stdout):
		mode = modeBar
	}
	if !finetune.PrimaryProcess() {
		// Rank 0 of a data-parallel group reports for all.
		mode = modeQuiet
	}
	d := newDisplay(mode, cfg)
	d.info("finetune %s: %s on %s -> %s (configuration: %s)", finetune.Version, cfg.Model.Arch, cfg.Data.Train, cfg.Output.Dir, from)
	return train(ctx, cfg, *resume, d)
}

// train runs cfg (resuming from resume when set) and reports through d:
// progress while it runs, the report files and a summary when it ends.
func train(ctx context.Context, cfg finetune.Config, resume string, d *display) error {
	hub := models.DefaultHub()
	if d.mode != modeQuiet && d.mode != modeJSON && isTerminal(os.Stderr) {
		hub.Progress = os.Stderr
	}
	rep := newReports(cfg, d)
	if !finetune.PrimaryProcess() {
		rep.dead = true // only rank 0 writes the run folder
	}
	res, err := finetune.Train(ctx, cfg, finetune.Options{
		Resume:   resume,
		Hub:      hub,
		Recorder: &runfiles.Recorder{},
		Observer: func(e finetune.Event) {
			d.event(e)
			rep.event(e)
		},
	})
	files := append(rep.write(res), rep.close()...)
	if err != nil {
		d.failure(err, files)
		return err
	}
	if res.Model != nil {
		defer nn.Free(res.Model)
	}
	if finetune.PrimaryProcess() {
		d.summary(cfg, res, files)
	}
	return nil
}
