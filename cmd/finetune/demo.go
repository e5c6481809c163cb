package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/demo"
)

func init() {
	register("demo", "run the built-in demonstration: the classic recipe against finetune's, on Fashion-MNIST", cmdDemo)
}

func cmdDemo(ctx context.Context, args []string) error {
	fs := newFlagSet("demo", "finetune demo [--quick] [--weights FILE] [--out DIR]", `
Runs the classic small-data transfer problem end to end, on a CPU in about
ten minutes, with data that ships with Debian (dataset-fashion-mnist):

 1. A ResNet trained on 8 of the 10 Fashion-MNIST classes stands in for
    ImageNet weights (--weights takes real ones); it is cached, so a second
    demo skips this step.
 2. The target is the two held-out classes, T-shirt/top against shirt, with
    1,000 training images each, tested on their images of the test split.
 3. Two fine-tunings run side by side: the classic Keras recipe (flatten into
    FC [1024, 512, 256], dropout 0.5, legacy BatchNorm, a fixed long
    training) and finetune's default recipe. A table compares them; each run
    folder has its curves.png.`)
	quick := fs.Bool("quick", false, "a reduced run of about a minute (what CI runs)")
	weights := fs.String("weights", "", "pretrained backbone `FILE` to use instead of the Fashion-MNIST source model")
	out := fs.String("out", filepath.Join("runs", "demo"), "parent `DIR` of the two runs' folders")
	work := fs.String("work", "", "`DIR` for the prepared images and the cached source model (default: the user cache)")
	device := fs.String("device", "auto", "auto, cpu, cuda or cuda:N")
	arch := fs.String("arch", "resnet18", "the ResNet to train")
	quiet := fs.Bool("quiet", false, "print only the table")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("demo: unexpected argument %q", pos[0])
	}
	mode := modeLines
	switch {
	case *quiet:
		mode = modeQuiet
	case isTerminal(os.Stdout):
		mode = modeBar
	}
	d := newDisplay(mode, finetune.Defaults())
	rep, err := demo.Run(ctx, demo.Options{Work: *work, Out: *out, Quick: *quick, Weights: *weights,
		Device: *device, Arch: *arch, Observer: d.event})
	if err != nil {
		return err
	}
	table := rep.Table()
	if err := os.WriteFile(filepath.Join(*out, "demo.md"), []byte(table), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "\n%s\nruns: %s, %s (curves.png in each); table: %s\n", table,
		rep.Rows[0].RunDir, rep.Rows[1].RunDir, filepath.Join(*out, "demo.md"))
	return nil
}
