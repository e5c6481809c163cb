package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/finetune-go/finetune/finetune/runfolder/plot"
	"github.com/finetune-go/finetune/internal/finitejson"
	"github.com/finetune-go/finetune/internal/plural"
	"github.com/finetune-go/finetune/internal/printable"
	"github.com/finetune-go/finetune/vision/data"
)

// maxClassColumns is the most classes the table shows a column each;
// beyond, it shows the three most probable.
const maxClassColumns = 6

func cmdPredict(ctx context.Context, args []string) error {
	fs := newFlagSet("predict", "finetune predict --checkpoint FILE [--format table|csv|json] [--tta] [--explain DIR] [--data.on_bad_image error|skip] PATH...", `
Classifies images with a checkpoint: each PATH is an image, or a folder
searched recursively for images. Every image gets its most probable class
and the probability of each class, through the checkpoint's evaluation
transforms. With --tta an image's probabilities are the mean of those of the
image and of its mirror image. With --explain DIR each image's Grad-CAM
overlay (where the model found the evidence for the class it predicts, red
the strongest) goes to DIR/<image name>.gradcam.png. A file that cannot be read stops the command
with an error naming it, as in PyTorch; with --data.on_bad_image skip it is
left out, warned about in one line (listed under "skipped_images" with
--format json), and the others are classified.`)
	ckpt := fs.String("checkpoint", "", "checkpoint `FILE`: a run's best.safetensors, best-delta.safetensors or last.safetensors")
	format := fs.String("format", "table", "output: table, csv (a header, then path,class,probability and a column per class) or json")
	tta := fs.Bool("tta", false, "test-time augmentation: average the softmax of each image and of its horizontal flip")
	device := fs.String("device", "auto", deviceUsage)
	weights := fs.String("model.weights", "", weightsUsage)
	explainDir := fs.String("explain", "", "write each image's Grad-CAM overlay into `DIR` (created if needed)")
	onBad := fs.String("data.on_bad_image", "error", "error (stop, naming the file) or skip (leave it out and list it); the training run's setting is not used")
	paths, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usagef("predict: no PATH: give images or folders of images")
	}
	if err := checkFormat(*format, "table", "csv", "json"); err != nil {
		return err
	}
	if *onBad != "error" && *onBad != "skip" {
		return usagef("predict: --data.on_bad_image: %q is not one of error, skip", *onBad)
	}
	files, err := finetune.ImageFiles(paths)
	if err != nil {
		return err
	}
	m, meta, err := loadModel(ctx, *ckpt, *weights, *device)
	if err != nil {
		return err
	}
	defer m.Close()
	res, err := finetune.Predict(ctx, m, meta, files, finetune.PredictOptions{TTA: *tta, OnBadImage: *onBad})
	if err != nil {
		return err
	}
	skipped := skippedList(res.Skipped)
	preds := res.Predictions
	if *explainDir != "" {
		// The images that were read: a skipped one has nothing to explain.
		read := make([]string, len(preds))
		for i, p := range preds {
			read[i] = p.Path
		}
		if err := writeExplanations(ctx, m, meta, read, *explainDir); err != nil {
			return err
		}
	}
	if *format == "json" {
		return printPredictionsJSON(meta.Classes, preds, skipped, *tta)
	}
	if len(skipped) > 0 {
		// One line, on standard error: the table or CSV stays data.
		fmt.Fprintf(os.Stderr, "warning: skipped %s that could not be read: %s\n",
			plural.Count(len(skipped), "image"), printable.Text(strings.Join(skipped, "; ")))
	}
	if *format == "csv" {
		return printPredictionsCSV(meta.Classes, preds)
	}
	return printPredictionsTable(meta.Classes, preds)
}

// skippedList says each skipped image as "PATH: REASON"; none is an
// empty list, not JSON's null.
func skippedList(skipped []data.SkippedImage) []string {
	out := []string{}
	for _, s := range skipped {
		out = append(out, fmt.Sprintf("%s: %v", s.Path, s.Err))
	}
	return out
}

func printPredictionsJSON(classes []string, preds []finetune.Prediction, skipped []string, tta bool) error {
	type item struct {
		Path          string             `json:"path"`
		Class         string             `json:"class"`
		Probability   float64            `json:"probability"`
		Probabilities map[string]float64 `json:"probabilities"`
	}
	items := make([]item, len(preds))
	for i, p := range preds {
		probs := map[string]float64{}
		for c, v := range p.Probabilities {
			probs[classes[c]] = v
		}
		items[i] = item{Path: p.Path, Class: p.Class, Probability: p.Probability(), Probabilities: probs}
	}
	return printJSON(true, map[string]any{"classes": classes, "tta": tta, "predictions": items, "skipped_images": skipped})
}

// printJSON writes v to standard output as JSON, indented or on one line,
// with non-finite numbers (a diverged model's) as null.
func printJSON(indent bool, v any) error {
	var b []byte
	var err error
	if indent {
		b, err = finitejson.MarshalIndent(v, "", "  ")
	} else {
		b, err = finitejson.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(b, '\n'))
	return err
}

func printPredictionsCSV(classes []string, preds []finetune.Prediction) error {
	w := csv.NewWriter(os.Stdout)
	if err := w.Write(append([]string{"path", "class", "probability"}, classes...)); err != nil {
		return err
	}
	for _, p := range preds {
		row := []string{p.Path, p.Class, strconv.FormatFloat(p.Probability(), 'g', 8, 64)}
		for _, v := range p.Probabilities {
			row = append(row, strconv.FormatFloat(v, 'g', 8, 64))
		}
		if err := w.Write(row); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

func printPredictionsTable(classes []string, preds []finetune.Prediction) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	head := "path\tclass\tprobability"
	if len(classes) <= maxClassColumns {
		head += "\t" + strings.Join(printable.Names(classes), "\t")
	} else {
		head += "\tmost probable"
	}
	fmt.Fprintln(w, head)
	for _, p := range preds {
		fmt.Fprintf(w, "%s\t%s\t%.4f", printable.Name(p.Path), printable.Name(p.Class), p.Probability())
		if len(classes) <= maxClassColumns {
			for _, v := range p.Probabilities {
				fmt.Fprintf(w, "\t%.4f", v)
			}
		} else {
			order := make([]int, len(classes))
			for i := range order {
				order[i] = i
			}
			sort.SliceStable(order, func(a, b int) bool { return p.Probabilities[order[a]] > p.Probabilities[order[b]] })
			var top []string
			for _, c := range order[:3] {
				top = append(top, fmt.Sprintf("%s %.4f", printable.Name(classes[c]), p.Probabilities[c]))
			}
			fmt.Fprintf(w, "\t%s", strings.Join(top, ", "))
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

// writeExplanations writes the Grad-CAM overlay of each file into dir as
// <name>.gradcam.png, numbering names that repeat.
func writeExplanations(ctx context.Context, m *finetune.Model, meta finetune.Meta, files []string, dir string) error {
	ex, err := finetune.Explain(ctx, m, meta, files)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--explain: %w", err)
	}
	seen := map[string]int{}
	for _, e := range ex {
		base := strings.TrimSuffix(filepath.Base(e.Path), filepath.Ext(e.Path))
		seen[base]++
		if n := seen[base]; n > 1 {
			base = fmt.Sprintf("%s-%d", base, n)
		}
		err := runfolder.WriteFile(filepath.Join(dir, base+".gradcam.png"), func(w io.Writer) error {
			return png.Encode(w, plot.Overlay(e))
		})
		if err != nil {
			return err
		}
	}
	return nil
}
