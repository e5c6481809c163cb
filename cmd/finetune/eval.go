package main

import (
	"context"
	"fmt"
	"github.com/finetune-go/finetune/internal/printable"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/finetune-go/finetune/finetune/runfolder/plot"
)

func cmdEval(ctx context.Context, args []string) error {
	fs := newFlagSet("eval", "finetune eval --checkpoint FILE --data DIR [--format table|json] [--png FILE] [--predictions FILE] [--data.on_bad_image error|skip]", `
Evaluates a checkpoint on a folder of labelled images (one subfolder per
class, the checkpoint's classes) with the checkpoint's evaluation
transforms (resize, center crop, its normalisation): accuracy, cross
entropy, precision, recall and F1 per class, and the confusion matrix.
With --predictions every image's result goes to a CSV file, in the
columns of a run's predictions.csv (split: the folder's name).`)
	ckpt := fs.String("checkpoint", "", "checkpoint `FILE`: a run's best.safetensors, best-delta.safetensors or last.safetensors")
	dir := fs.String("data", "", "`DIR` with one subfolder of images per class")
	format := fs.String("format", "table", "output: table or json")
	png := fs.String("png", "", "also draw the confusion matrix into `FILE` (a PNG)")
	predictions := fs.String("predictions", "", "also write every image's prediction to `FILE` (CSV: path, split, true, predicted, prob_<class>..., loss)")
	device := fs.String("device", "auto", deviceUsage)
	weights := fs.String("model.weights", "", weightsUsage)
	onBad := fs.String("data.on_bad_image", "error", "error (stop, naming the file) or skip (leave it out and list it); the training run's setting is not used")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *dir == "" && len(pos) == 1 {
		*dir, pos = pos[0], nil
	}
	switch {
	case len(pos) > 0:
		return usagef("eval: unexpected argument %q", pos[0])
	case *dir == "":
		return usagef("eval: --data is required: a folder with one subfolder of images per class")
	}
	if err := checkFormat(*format, "table", "json"); err != nil {
		return err
	}
	if *onBad != "error" && *onBad != "skip" {
		return usagef("eval: --data.on_bad_image: %q is not one of error, skip", *onBad)
	}
	m, meta, err := loadModel(ctx, *ckpt, *weights, *device)
	if err != nil {
		return err
	}
	defer m.Close()
	ev, err := finetune.Evaluate(ctx, m, meta, *dir, *onBad)
	if err != nil {
		return err
	}
	c := ev.Confusion
	skipped := skippedList(ev.Skipped)
	if *png != "" {
		title := fmt.Sprintf("%s: accuracy %.3f on %d images", *dir, ev.Accuracy, c.Total())
		err := runfolder.WriteFile(*png, func(w io.Writer) error { return plot.Confusion(w, c, title) })
		if err != nil {
			return err
		}
	}
	if *predictions != "" {
		split := runfolder.Split{Name: filepath.Base(filepath.Clean(*dir)), Images: ev.Images}
		err := runfolder.WriteFile(*predictions, func(w io.Writer) error { return runfolder.WritePredictions(w, meta.Classes, split) })
		if err != nil {
			return err
		}
	}
	if *format == "json" {
		var perClass []map[string]any
		for _, pc := range c.PerClass() {
			perClass = append(perClass, map[string]any{"class": pc.Class, "precision": pc.Precision,
				"recall": pc.Recall, "f1": pc.F1, "support": pc.Support})
		}
		return printJSON(false, map[string]any{
			"checkpoint": *ckpt, "data": *dir, "images": c.Total(), "accuracy": ev.Accuracy, "loss": ev.Loss,
			"macro_f1": c.MacroF1(), "per_class": perClass, "classes": c.Classes, "confusion": c.Counts,
			"skipped_images": skipped,
		})
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "checkpoint\t%s (%s, %s, %d classes)\n", *ckpt, meta.Form, meta.Config.Model.Arch, len(meta.Classes))
	fmt.Fprintf(w, "data\t%s (%d images)\n", *dir, c.Total())
	fmt.Fprintf(w, "accuracy\t%.4f\n", ev.Accuracy)
	fmt.Fprintf(w, "loss\t%.4f\n", ev.Loss)
	fmt.Fprintf(w, "macro F1\t%.4f\n", c.MacroF1())
	label := "skipped"
	for _, s := range skipped {
		fmt.Fprintf(w, "%s\t%s\n", label, printable.Text(s))
		label = ""
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("\n%s", c.Table())
	return nil
}
