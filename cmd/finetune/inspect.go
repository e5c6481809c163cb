package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/finetune-go/finetune/finetune/runfolder/plot"
	"github.com/finetune-go/finetune/finetune/shift"
	"github.com/finetune-go/finetune/internal/plural"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
)

func cmdInspect(ctx context.Context, args []string) error {
	fs := newFlagSet("inspect", "finetune inspect [--config FILE | --checkpoint FILE] [--classes N] [--data DIR] [--format table|json] [flags]", `
Shows the model a configuration trains, before spending a GPU-hour on it:
each part's output shape at the configured image size, its parameters and
how many of them train in each stage of the recipe, which BatchNorm layers
normalise with batch statistics while training, the head's size, the size
of a full and of a delta checkpoint, and the steps of an epoch when
data.train exists. It reads no pretrained weights: sizes do not depend on
them. It takes the flags of run; data.train is optional here.

With --data DIR the classes and steps are DIR's, and it also loads the pretrained weights and measures, on a
sample of DIR's images, how far they are from the data the backbone was
trained on, as each BatchNorm layer sees it, per stage; it says what that
implies (train.batchnorm: auto's choice) and how deep to unfreeze.

With --augment N it draws N training images as the training pipeline
(augment.*) delivers them, beside each image's evaluation view, into
augment.png (--augment-png): up to four images of data.train, each in a row
with its share of the N draws.`)
	file := fs.String("config", "", "configuration `FILE` (YAML, JSON or TOML; default ./finetune.yaml when it exists)")
	ckpt := fs.String("checkpoint", "", "inspect the model of checkpoint `FILE` (its configuration and classes), after reading and checking every tensor: a damaged file is an error")
	classes := fs.Int("classes", 0, "number of classes (default: data.train's, the checkpoint's, else 2)")
	format := fs.String("format", "table", "output: table or json")
	shiftDir := fs.String("data", "", "measure the BatchNorm shift of the images in `DIR` (one subfolder per class)")
	augment := fs.Int("augment", 0, "draw `N` training images as augmentation delivers them (needs data.train)")
	augmentPNG := fs.String("augment-png", "augment.png", "where --augment draws, a PNG `FILE`")
	keys := fs.addConfigFlags()
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("inspect: unexpected argument %q", pos[0])
	}
	if *augment < 0 {
		return usagef("inspect: --augment %d: want a number of images", *augment)
	}
	if err := checkFormat(*format, "table", "json"); err != nil {
		return err
	}
	src := configSource{file: *file}
	classNote := ""
	numClasses := *classes
	checked := ""
	if *ckpt != "" {
		// Every tensor is read and checked: a damaged file is reported
		// here, not when a run or eval meets it.
		meta, err := finetune.VerifyCheckpoint(*ckpt)
		if err != nil {
			return fmt.Errorf("--checkpoint: damaged: %w", err)
		}
		checked = fmt.Sprintf("%s (%s): every tensor read, its shape and values checked", *ckpt, meta.Form)
		if *file == "" {
			src.base, src.what = &meta.Config, *ckpt
		}
		if numClasses == 0 {
			numClasses, classNote = len(meta.Classes), "from the checkpoint"
		}
	}
	cfg, from, err := src.load(keys)
	if err = withoutDataTrain(err); err != nil {
		return err
	}
	dataFrom := "data.train"
	if *shiftDir != "" {
		// The folder measured is the one asked about: its classes and
		// steps, not those of a configured data.train.
		cfg.Data.Train, dataFrom = *shiftDir, "--data "+*shiftDir
	}
	var data *finetune.DataInfo
	var dataNote string
	if cfg.Data.Train != "" {
		if data, err = finetune.InspectData(cfg); err != nil {
			dataNote = err.Error()
		} else if numClasses == 0 {
			numClasses, classNote = len(data.Classes), "from "+dataFrom
		}
	}
	if numClasses == 0 {
		numClasses, classNote = 2, "assumed: set --classes or data.train"
	}
	if numClasses < 2 {
		return usagef("--classes: want at least 2, got %d", numClasses)
	}
	in, err := finetune.Inspect(cfg, numClasses)
	if err != nil {
		return err
	}
	if *augment > 0 {
		if cfg.Data.Train == "" {
			return usagef("inspect: --augment needs data.train: the images to augment")
		}
		samples, err := finetune.PreviewAugment(cfg, *augment, cfg.Seed)
		if err != nil {
			return fmt.Errorf("--augment: %w", err)
		}
		if err := runfolder.WriteFile(*augmentPNG, func(w io.Writer) error { return plot.Augment(w, samples) }); err != nil {
			return err
		}
	}
	if *format == "json" {
		out := map[string]any{"configuration": from, "model": in, "data": data}
		if *augment > 0 {
			out["augment_png"] = *augmentPNG
		}
		if checked != "" {
			out["checkpoint"] = map[string]any{"path": *ckpt, "verified": true}
		}
		return printJSON(false, out)
	}
	if *augment > 0 {
		defer fmt.Printf("\naugmentation: %d training draws beside their evaluation views in %s\n", *augment, *augmentPNG)
	}
	printInspection(os.Stdout, cfg, in)
	if checked != "" {
		fmt.Printf("\ncheckpoint: %s", checked)
	}
	fmt.Printf("\nconfiguration: %s\nclasses: %d (%s)\n", from, numClasses, classNote)
	printData(os.Stdout, cfg, data, dataNote)
	for _, w := range in.Warnings {
		fmt.Printf("\nwarning: %s\n", w)
	}
	if *shiftDir != "" {
		rep, n, err := finetune.MeasureShift(ctx, cfg, *shiftDir, models.DefaultHub())
		if err != nil {
			return fmt.Errorf("--data: %w", err)
		}
		mode, why := shift.ChooseBN(rep)
		point, freezeWhy := shift.SuggestFreeze(rep, n)
		fmt.Printf("\nBatchNorm shift of %s (%s) on %d images of %s:\n%s\n-> %s\n-> train.batchnorm: auto would choose %s: %s\n-> freeze for the fine-tuning stage: %s: %s\n",
			cfg.Model.Arch, cfg.Model.Weights, rep.Images, *shiftDir, rep.Table(), rep.Implication(), mode, why, point, freezeWhy)
		if w := rep.Normalization(); w != "" {
			fmt.Printf("\nwarning: %s\n", w)
		}
	}
	return nil
}

// withoutDataTrain drops from a configuration error the missing
// data.train, which inspect does not need.
func withoutDataTrain(err error) error {
	var ce *finetune.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	var rest []string
	for _, p := range ce.Problems {
		if !strings.HasPrefix(p, "data.train:") {
			rest = append(rest, p)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return usageError{&finetune.ConfigError{Problems: rest}}
}

func printInspection(w io.Writer, cfg finetune.Config, in *finetune.Inspection) {
	fmt.Fprintf(w, "%s at %dx%d pixels, %d classes\n\n", in.Arch, in.ImageSize, in.ImageSize, in.NumClasses)
	rows := [][]string{{"part", "output", "parameters"}, {"", "", ""}}
	for _, s := range in.Stages {
		rows[0] = append(rows[0], s.Name)
		rows[1] = append(rows[1], "freeze "+s.Freeze)
	}
	for i, g := range in.Groups {
		shape := dims(g.Shape)
		if g.Name == "pool" {
			shape += " (" + in.Pooling + ")"
		}
		row := []string{g.Name, shape, nn.Thousands(g.Params)}
		for _, s := range in.Stages {
			row = append(row, nn.Thousands(s.GroupTrainable[i]))
		}
		rows = append(rows, row)
	}
	total := []string{"total", "", nn.Thousands(in.Total)}
	frozen := []string{"frozen", "", ""}
	for _, s := range in.Stages {
		total = append(total, nn.Thousands(s.Trainable))
		frozen = append(frozen, nn.Thousands(in.Total-s.Trainable))
	}
	printTable(w, append(rows, total, frozen))
	fmt.Fprintf(w, "(the columns after parameters count those that train in each stage of the recipe)\n")

	printBatchNorms(w, cfg, in)

	h := cfg.Model.Head
	fmt.Fprintf(w, "\nhead: %s pooling -> %s features -> hidden %v -> %d classes: %s parameters (%s as float32, %s with Adam's two moments)\n",
		in.Pooling, nn.Thousands(in.HeadInputs), h.Hidden, in.NumClasses, nn.Thousands(in.HeadParams),
		nn.Bytes(in.HeadParams*4), nn.Bytes(in.HeadParams*12))
	fmt.Fprintf(w, "checkpoint: full %s, delta %s (the head, every BatchNorm and what trains; tensors only, a file adds a few KiB)\n",
		nn.Bytes(in.FullBytes), nn.Bytes(in.DeltaBytes))
}

// bnCell summarises the modes of a group's BatchNorm layers in a stage:
// "4 frozen", "2 train, 2 frozen".
func bnCell(s finetune.StageInfo, group string) string {
	count := map[string]int{}
	for _, bn := range s.BatchNorms {
		if bn.Group == group {
			count[bn.Mode]++
		}
	}
	var parts []string
	for _, mode := range []string{"train", "legacy", "frozen"} {
		if count[mode] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[mode], mode))
		}
	}
	return strings.Join(parts, ", ")
}

func printData(w io.Writer, cfg finetune.Config, d *finetune.DataInfo, note string) {
	switch {
	case note != "":
		fmt.Fprintf(w, "data: %s\n", note)
	case d == nil:
		fmt.Fprintln(w, "data: data.train not set: steps per epoch unknown")
	default:
		epochs := 0
		for _, s := range cfg.Stages {
			epochs += s.Epochs
		}
		fold := ""
		if cfg.CV.Folds > 0 {
			fold = fmt.Sprintf(" (fold 1 of %d)", cfg.CV.Folds)
		}
		fmt.Fprintf(w, "data: %d training images, %d validation%s -> %s per epoch at batch %d, %s over %s at most\n",
			d.Train, d.Val, fold, plural.Count(d.StepsPerEpoch, "step"), cfg.Data.BatchSize,
			plural.Count(d.StepsPerEpoch*epochs, "step"), plural.Count(epochs, "epoch"))
	}
}

// dims formats a shape as 2048x7x7.
func dims(shape []int64) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return strings.Join(parts, "x")
}

// printBatchNorms prints the modes of in's BatchNorm layers in each stage,
// or that the network has none.
func printBatchNorms(w io.Writer, cfg finetune.Config, in *finetune.Inspection) {
	if !slices.ContainsFunc(in.Groups, func(g finetune.GroupInfo) bool { return g.BatchNorms > 0 }) {
		fmt.Fprintf(w, "\nno BatchNorm layers: %s normalises with LayerNorm, each image by itself\n", in.Arch)
		return
	}
	fmt.Fprintf(w, "\nBatchNorm layers while training (train.batchnorm: %s, train.bn_affine: %s):\n", cfg.Train.BatchNorm, cfg.Train.BNAffine)
	rows := [][]string{{"part", "layers"}}
	for _, s := range in.Stages {
		rows[0] = append(rows[0], s.Name)
	}
	for _, g := range in.Groups {
		if g.BatchNorms == 0 {
			continue
		}
		row := []string{g.Name, fmt.Sprint(g.BatchNorms)}
		for _, s := range in.Stages {
			row = append(row, bnCell(s, g.Name))
		}
		rows = append(rows, row)
	}
	printTable(w, rows)
	fmt.Fprintln(w, "(train: batch statistics, running ones updated; frozen: stored statistics; legacy: batch statistics, stored ones unused until inference)")
	if verbose {
		for _, s := range in.Stages {
			fmt.Fprintf(w, "\nstage %s, every BatchNorm:\n", s.Name)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			for _, bn := range s.BatchNorms {
				affine := "scale and shift frozen"
				if bn.Affine {
					affine = "scale and shift train"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", bn.Path, bn.Mode, affine)
			}
			tw.Flush()
		}
	}
}
