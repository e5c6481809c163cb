package main

import (
	"context"
	"os"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/finetune-go/finetune/vision/models"
)

func cmdRun(ctx context.Context, args []string) error {
	fs := newFlagSet("run", "finetune run [--config FILE] [--resume PATH] [flags]", `
Trains a model as configured: stage after stage of the recipe, validating
every epoch, keeping the best epoch's weights. The run folder (output.dir, by
default a new runs/<UTC time>, with runs/latest linking to the newest)
receives metrics.jsonl (an epoch per line), config.yaml (every key as used),
plan.json, result.json, the checkpoints (best.safetensors,
best-delta.safetensors, last.safetensors to resume from), curves.png,
predictions.csv (every test and validation image), confusion.png (the test
set's when there is one, confusion_val.png beside it), top_losses.png (the
worst images with their Grad-CAM), report.html (all of it on one page) and,
with output.tensorboard, TensorBoard event files. A
folder that holds another run is refused; a run that fails before its first
epoch leaves nothing behind.

On a terminal each epoch shows a progress bar; elsewhere (a pipe, CI) a line
per epoch. An interrupt (Ctrl-C, SIGTERM) finishes the step, writes
last.safetensors and exits with status 130; 'finetune run --resume
RUN/last.safetensors' continues exactly where the run stopped, in RUN.`)
	file := fs.String("config", "", "configuration `FILE` (YAML, JSON or TOML; default ./finetune.yaml when it exists)")
	resume := fs.String("resume", "", "continue the interrupted run of checkpoint `PATH` (its last.safetensors), "+
		"with the checkpoint's configuration unless --config is given")
	quiet := fs.Bool("quiet", false, "print only the final summary (and warnings)")
	asJSON := fs.Bool("json", false, "print JSON lines: every event, then a summary object")
	allowDataChange := fs.Bool("allow-data-change", false, "with --resume, go on although the training data "+
		"differ from those the checkpoint recorded")
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
	if err := src.checkpointBase(*resume, "--resume"); err != nil {
		return err
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
	return train(ctx, cfg, from, finetune.Options{Resume: *resume, AllowDataChange: *allowDataChange}, d)
}

// openFolder opens the folder a run of cfg writes: the checkpoint's for a
// resumed run, output.dir when set, else a new one under runs/.
func openFolder(cfg finetune.Config, resume string, d *display) (*runfolder.Folder, error) {
	o := runfolder.Options{Tensorboard: cfg.Output.Tensorboard, Warn: func(msg string) { d.warn("%s", msg) }}
	switch {
	case resume != "":
		return runfolder.Resume(resume, o)
	case cfg.Output.Dir == "":
		return runfolder.New("runs", o)
	}
	return runfolder.Open(cfg.Output.Dir, o)
}

// train runs cfg (from says where it came from) with opts' resume
// checkpoint and data-change permission, recording it in its run folder,
// and reports through d: progress while it runs, a summary of the run
// and of the files it wrote when it ends.
func train(ctx context.Context, cfg finetune.Config, from string, opts finetune.Options, d *display) error {
	opts.Hub = models.DefaultHub()
	if d.mode != modeQuiet && d.mode != modeJSON && isTerminal(os.Stderr) {
		opts.Hub.Progress = os.Stderr
	}
	opts.Observer = d.event
	var folder *runfolder.Folder
	if finetune.PrimaryProcess() {
		// Rank 0 of a data-parallel group keeps the record for all.
		var err error
		if folder, err = openFolder(cfg, opts.Resume, d); err != nil {
			return err
		}
		cfg.Output.Dir = folder.Dir()
		opts.Recorder = folder
	}
	d.info("finetune %s: %s on %s -> %s (configuration: %s)", finetune.Version, cfg.Model.Arch, cfg.Data.Train, cfg.Output.Dir, from)
	res, err := finetune.Train(ctx, cfg, opts)
	if err == nil && res.Model != nil {
		defer res.Model.Close()
	}
	var files []runfolder.File
	if folder != nil {
		if cerr := folder.Close(); cerr != nil {
			if err != nil {
				d.warn("%v", cerr)
			} else {
				err = cerr
			}
		}
		files = folder.Files()
	}
	if err != nil {
		d.failure(err, files)
		return err
	}
	if folder != nil {
		d.summary(cfg, res, files)
	}
	return nil
}
