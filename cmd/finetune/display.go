package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/internal/finitejson"
	"github.com/finetune-go/finetune/internal/printable"
)

// outputMode is how a run reports its progress.
type outputMode int

const (
	modeLines outputMode = iota // a line per epoch, no control characters: pipes, CI logs
	modeBar                     // a progress bar through each epoch: a terminal
	modeQuiet                   // the final summary only
	modeJSON                    // JSON lines: every event, then a summary object
)

// isTerminal reports whether f is a terminal that understands carriage
// returns and erase-line sequences.
func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// display renders a run's events. The engine may report from several
// goroutines (the loader's warnings), so every method locks.
type display struct {
	mu        sync.Mutex
	out, errw io.Writer
	mode      outputMode
	epochs    map[string]int // a stage's configured epochs
	bar       bar
	run       runClock
}

// runClock is what the whole run's ETA is computed from: the stage in
// progress, when it started, the plan's estimates of it and of the
// stages after it, and the first step seen in it.
type runClock struct {
	key             string // fold and stage
	start           time.Time
	estimate, later float64
	firstAt         time.Time
	firstDone       int // steps of the stage done at its first step event; -1 before it
}

// left estimates the seconds left of the run at step e: the stage's
// estimate less the time it has run until two of its steps are seen,
// then the stage's own pace (validation passes included, once it
// crossed an epoch), plus the plan's estimate of the stages after it.
func (c *runClock) left(e finetune.Event, epochs int, now time.Time) (float64, bool) {
	if c.key != fmt.Sprintf("%d %s", e.Fold, e.Stage) || c.estimate == 0 {
		return 0, false
	}
	done := (e.Epoch-1)*e.Steps + e.Step
	if c.firstDone < 0 {
		c.firstDone, c.firstAt = done, now
	}
	stage := max(c.estimate-now.Sub(c.start).Seconds(), 0)
	if n := done - c.firstDone; n > 0 {
		stage = now.Sub(c.firstAt).Seconds() / float64(n) * float64(max(epochs*e.Steps-done, 0))
	}
	return stage + c.later, true
}

// bar is the state of the progress bar of the epoch in progress.
type bar struct {
	shown     bool
	key       string // fold, stage and epoch the bar is for
	start     time.Time
	startStep int
	drawn     time.Time
}

func newDisplay(mode outputMode, cfg finetune.Config) *display {
	d := &display{out: os.Stdout, errw: os.Stderr, mode: mode, epochs: map[string]int{}}
	for _, s := range cfg.Stages {
		d.epochs[s.Name] = s.Epochs
	}
	return d
}

// event renders one of the engine's events.
func (d *display) event(e finetune.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.Kind == finetune.EventStage && e.Epochs > 0 {
		d.epochs[e.Stage] = e.Epochs
	}
	if e.Kind == finetune.EventStage {
		d.run = runClock{key: fmt.Sprintf("%d %s", e.Fold, e.Stage), start: time.Now(), estimate: e.Estimate,
			later: max(e.RunEstimate-e.Estimate, 0), firstDone: -1}
	}
	switch {
	case d.mode == modeJSON:
		d.json(e)
		return
	case e.Kind == finetune.EventStep:
		if d.mode == modeBar {
			d.drawBar(e)
		}
		return
	case d.mode == modeQuiet && (e.Kind != finetune.EventWarning || e.Skipped != ""):
		// Quiet lists the skipped images once, in the summary.
		return
	}
	d.clearBar()
	switch e.Kind {
	case finetune.EventWarning:
		fmt.Fprintf(d.errw, "warning: %s%s\n", foldPrefix(e), printable.Text(e.Message))
	case finetune.EventEpoch:
		fmt.Fprintln(d.out, foldPrefix(e)+d.epochLine(*e.Metrics))
	case finetune.EventFold:
		fmt.Fprintln(d.out, e.Message)
	default:
		fmt.Fprintln(d.out, foldPrefix(e)+printable.Text(e.Message))
	}
}

// info prints a line of the tool's own, as an info event.
func (d *display) info(format string, args ...any) {
	d.event(finetune.Event{Kind: finetune.EventInfo, Fold: -1, Message: fmt.Sprintf(format, args...)})
}

// warn prints a warning of the tool's own.
func (d *display) warn(format string, args ...any) {
	d.event(finetune.Event{Kind: finetune.EventWarning, Fold: -1, Message: fmt.Sprintf(format, args...)})
}

func foldPrefix(e finetune.Event) string {
	if e.Fold < 0 {
		return ""
	}
	return fmt.Sprintf("[fold %d] ", e.Fold+1)
}

// json writes v as one line.
func (d *display) json(v any) {
	b, err := finitejson.Marshal(v)
	if err != nil {
		fmt.Fprintf(d.errw, "warning: an event could not be written as JSON: %v\n", err)
		return
	}
	fmt.Fprintf(d.out, "%s\n", b)
}

func (d *display) epochLine(m finetune.EpochMetrics) string {
	// The steps' loss is under augmentation; the train accuracy and the
	// gap are in evaluation mode, as validation is.
	s := fmt.Sprintf("%s %d/%d  train loss %.4f (augmented)  train acc %.4f (eval)  val loss %.4f acc %.4f  gap %+.4f  lr %.2e  %s",
		m.Stage, m.Epoch, d.epochs[m.Stage], m.TrainLoss, m.TrainAccuracy, m.ValLoss, m.ValAccuracy, m.Gap, m.LR,
		duration(m.Seconds))
	if m.Best {
		s += "  *best"
	}
	return s
}

func (d *display) drawBar(e finetune.Event) {
	now := time.Now()
	key := fmt.Sprint(e.Fold, e.Stage, e.Epoch)
	if key != d.bar.key || e.Step <= d.bar.startStep {
		d.bar = bar{shown: d.bar.shown, key: key, start: now, startStep: e.Step}
	}
	if e.Step < e.Steps && now.Sub(d.bar.drawn) < 100*time.Millisecond {
		return
	}
	d.bar.drawn = now
	const width = 24
	filled := width * min(e.Step, e.Steps) / max(e.Steps, 1)
	eta := "-"
	if done := e.Step - d.bar.startStep; done > 0 {
		left := now.Sub(d.bar.start).Seconds() / float64(done) * float64(e.Steps-e.Step)
		eta = duration(left)
	}
	if left, ok := d.run.left(e, d.epochs[e.Stage], now); ok {
		eta += ", run " + duration(left)
	}
	fmt.Fprintf(d.out, "\r%s%s %d/%d %s%s %d/%d  loss %.4f  %.0f img/s  ETA %s\x1b[K",
		foldPrefix(e), e.Stage, e.Epoch, d.epochs[e.Stage], strings.Repeat("█", filled),
		strings.Repeat("░", width-filled), e.Step, e.Steps, e.Loss, e.ImagesPerSecond, eta)
	d.bar.shown = true
}

func (d *display) clearBar() {
	if d.bar.shown {
		fmt.Fprint(d.out, "\r\x1b[K")
		d.bar.shown = false
	}
}

// duration formats seconds as 4.2s, 3m07s or 2h05m.
func duration(s float64) string {
	switch {
	case s < 60:
		return fmt.Sprintf("%.1fs", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", int(s)/60, int(s)%60)
	}
	return fmt.Sprintf("%dh%02dm", int(s)/3600, int(s)%3600/60)
}
