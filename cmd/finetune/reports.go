package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/finetune-go/finetune/finetune"
)

// reports writes the files of a run folder that are made for people,
// beside the engine's metrics.jsonl, result.json and checkpoints:
// TensorBoard event files as epochs end (output.tensorboard), and
// curves.png and confusion.png when the run stops.
type reports struct {
	cfg  finetune.Config
	d    *display
	tb   map[int]*finetune.TensorBoard // by fold; -1 outside cross-validation
	dead bool                          // writing events failed: stop trying
}

func newReports(cfg finetune.Config, d *display) *reports {
	return &reports{cfg: cfg, d: d, tb: map[int]*finetune.TensorBoard{}}
}

// runDir is the folder of a fold's run (fold -1: the only run), as the
// engine lays them out.
func runDir(cfg finetune.Config, fold int) string {
	if fold < 0 {
		return cfg.Output.Dir
	}
	return filepath.Join(cfg.Output.Dir, fmt.Sprintf("fold%d", fold+1))
}

// event writes an epoch's scalars to its run's event file.
func (r *reports) event(e finetune.Event) {
	if !r.cfg.Output.Tensorboard || e.Kind != finetune.EventEpoch || r.dead {
		return
	}
	tb := r.tb[e.Fold]
	var err error
	if tb == nil {
		if tb, err = finetune.NewTensorBoard(runDir(r.cfg, e.Fold)); err == nil {
			r.tb[e.Fold] = tb
		}
	}
	if err == nil {
		err = tb.Epoch(*e.Metrics)
	}
	if err != nil {
		r.dead = true
		r.d.warn("no more TensorBoard events: %v", err)
	}
}

// close closes the event files and returns their paths.
func (r *reports) close() []string {
	var paths []string
	for _, tb := range r.tb {
		if err := tb.Close(); err != nil {
			r.d.warn("%s: %v", tb.Path(), err)
		}
		paths = append(paths, tb.Path())
	}
	slices.Sort(paths)
	return paths
}

// write draws each run folder's curves from its metrics.jsonl, and the
// validation confusion matrix when res has one; it returns the files it
// wrote. A run that stopped early still gets its curves.
func (r *reports) write(res *finetune.Result) []string {
	if !finetune.PrimaryProcess() {
		return nil
	}
	dirs := []string{runDir(r.cfg, -1)}
	if r.cfg.CV.Folds > 0 {
		dirs = dirs[:0]
		for f := range r.cfg.CV.Folds {
			dirs = append(dirs, runDir(r.cfg, f))
		}
	}
	var files []string
	for _, dir := range dirs {
		history, err := finetune.ReadMetrics(filepath.Join(dir, "metrics.jsonl"))
		if errors.Is(err, fs.ErrNotExist) || (err == nil && len(history) == 0) {
			continue
		}
		path := filepath.Join(dir, "curves.png")
		if err == nil {
			err = finetune.WriteCurves(path, history)
		}
		if err != nil {
			r.d.warn("curves: %v", err)
			continue
		}
		files = append(files, path)
	}
	if res != nil && res.Val != nil {
		path := filepath.Join(runDir(r.cfg, -1), "confusion.png")
		c := res.Val.Confusion
		title := fmt.Sprintf("validation: accuracy %.3f on %d images", c.Accuracy(), c.Total())
		if err := finetune.WriteConfusionPNG(path, c, title); err != nil {
			r.d.warn("confusion: %v", err)
		} else {
			files = append(files, path)
		}
	}
	return files
}
