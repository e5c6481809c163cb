// Package runfolder keeps a training run's record on disk: it is the only
// writer of a run folder. The engine (finetune.Train) writes no file; it
// reports what is worth keeping as events to a finetune.Recorder, and a
// Folder is that recorder for a folder:
//
//	config.yaml             the configuration as used
//	plan.json               every decision made before the first epoch
//	metrics.jsonl           an epoch per line, appended as epochs end
//	shift.json, search.json reports of the run (finetune.Artifact)
//	best.safetensors        checkpoints (finetune.CheckpointWrite)
//	best-delta.safetensors
//	last.safetensors        the state to resume from
//	result.json             the run's summary, when it ends
//	curves.png              learning curves, when it ends or fails
//	predictions.csv         every test and validation image's prediction
//	confusion.png           the test confusion matrix (validation's
//	                        without a test set)
//	confusion_val.png       the validation one, beside a test set's
//	top_losses.png          the worst test (else validation) images,
//	                        with Grad-CAM overlays
//	report.html             all of it on one page to read or send
//	events.out.tfevents.*   TensorBoard (Options.Tensorboard): the epochs'
//	                        scalars, the plan as text, the confusion
//	                        matrices and top losses as images
//	fold1/, fold2/, ...     the same, per fold of a cross-validation
//
// Every file but metrics.jsonl and the TensorBoard stream is written
// atomically (a temporary file, synced, then renamed), so a crash or a
// full disk never leaves a torn one; metrics.jsonl gets a synced line per
// epoch and is replaced atomically when a resumed run drops the epochs
// its checkpoint does not hold. A lock (.lock, holding the writer's PID)
// keeps a second process out of a folder in use; temporary files a crash
// left are removed once it is held. A number JSON cannot hold (the NaN
// loss of a run that diverged) is written as null (see
// internal/finitejson), so the record of such a run is still written.
//
// New makes a folder of its own for each run (runs/<UTC time>, with
// runs/latest linking to the newest), Open a named one that holds no run
// yet, and Resume the folder of the checkpoint a run continues from.
//
// A run that ends before its first epoch (a bad path, an unknown
// architecture) leaves nothing behind: what a Folder would have written
// before that epoch is held back until it comes, and Close removes what
// the Folder created, the folder included.
package runfolder

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder/plot"
	"github.com/finetune-go/finetune/finetune/runfolder/tfevents"
	"github.com/finetune-go/finetune/internal/finitejson"
	"github.com/finetune-go/finetune/internal/plural"
)

// Options configure a Folder.
type Options struct {
	// Tensorboard also writes TensorBoard event files
	// (output.tensorboard).
	Tensorboard bool
	// Warn receives what a user should know but that does not stop the
	// run: a lock taken over from a dead process, temporary files a crash
	// left, a "latest" link not updated, TensorBoard events given up.
	// nil drops warnings.
	Warn func(msg string)
}

// File is a file a Folder wrote.
type File struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

// Folder is a run folder open for writing; it implements
// finetune.Recorder. A Folder is made by New, Open or Resume, holds the
// folder's lock until Close, and is safe for use by several goroutines.
type Folder struct {
	mu      sync.Mutex
	dir     string
	opts    Options
	lock    *lock
	made    []string // folders this Folder created, innermost first
	latest  string   // link to point at dir once the run has begun; "" none
	auto    bool     // named by New: config.yaml keeps output.dir empty
	resumed bool     // opened by Resume: the folder holds the run continued
	runs    map[int]*run
	begun   bool           // an epoch was recorded, or a run ended
	pending []func() error // writes held back until the run begins
	files   map[string]int64
	err     error // sticky: the first failed write
	closed  bool
}

// run is the record of one run: the only one, or a fold.
type run struct {
	dir     string
	history []finetune.EpochMetrics
	rewrite bool // metrics.jsonl is rewritten from history before the next line
	ended   bool
	tb      *tfevents.Writer
	// config, plan, topLosses and topLossPNG are kept for report.html.
	config     finetune.Config
	plan       *finetune.Plan
	topLosses  *finetune.TopLossReport
	topLossPNG []byte
}

// timeLayout names the folders of New: UTC time to the second.
const timeLayout = "20060102-150405"

// New creates a folder of its own for a new run under parent (which is
// created if needed): parent/<UTC time>, e.g. runs/20261203-104512, with
// a suffix (-2, -3, ...) if that name is taken. Once the run has begun,
// parent/latest is a symbolic link to it.
func New(parent string, o Options) (*Folder, error) {
	made, err := mkdirAll(parent)
	if err != nil {
		return nil, err
	}
	name := time.Now().UTC().Format(timeLayout)
	dir := filepath.Join(parent, name)
	for i := 2; ; i++ {
		err = os.Mkdir(dir, 0o755)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
		dir = filepath.Join(parent, fmt.Sprintf("%s-%d", name, i))
	}
	if err != nil {
		removeDirs(made)
		return nil, err
	}
	f := &Folder{dir: dir, opts: o, made: append([]string{dir}, made...), latest: filepath.Join(parent, "latest"), auto: true}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

// Open opens dir, which is created if needed, for a new run. A folder
// that already holds a run (config.yaml or metrics.jsonl) is refused:
// only its own run, resumed through Resume, writes there again.
func Open(dir string, o Options) (*Folder, error) {
	made, err := mkdirAll(dir)
	if err != nil {
		return nil, err
	}
	f := &Folder{dir: dir, opts: o, made: made}
	if err := f.open(); err != nil {
		return nil, err
	}
	if held := holdsRun(dir); held != "" {
		f.lock.release()
		return nil, fmt.Errorf("%s already holds a run (%s): give another output.dir, or none for a new folder", dir, held)
	}
	return f, nil
}

// Resume opens the folder that holds checkpoint, the last.safetensors of
// an interrupted run, to continue that run there, wherever the
// configuration's output.dir points and whatever the working directory.
func Resume(checkpoint string, o Options) (*Folder, error) {
	if _, err := os.Stat(checkpoint); err != nil {
		return nil, err
	}
	f := &Folder{dir: filepath.Dir(checkpoint), opts: o, resumed: true}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

// open takes the lock and removes what a crash left.
func (f *Folder) open() error {
	f.runs, f.files = map[int]*run{}, map[string]int64{}
	l, took, err := acquire(f.dir)
	if err != nil {
		removeDirs(f.made)
		return err
	}
	f.lock = l
	if took != 0 && took != os.Getpid() && !alive(took) {
		f.warn("%s: took over the lock left by process %d, which is no longer running", f.dir, took)
	}
	removed, err := removeStale(f.dir)
	if len(removed) > 0 {
		f.warn("removed %d temporary files left by an interrupted write: %v", len(removed), removed)
	}
	if err != nil {
		f.lock.release()
		removeDirs(f.made)
		return err
	}
	return nil
}

// Dir returns the folder's path.
func (f *Folder) Dir() string { return f.dir }

// Record writes what e reports (see finetune.Recorder). Progress events
// are ignored. An error is sticky: every later call returns it.
func (f *Folder) Record(e finetune.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = f.record(e)
	}
	return f.err
}

// record writes e.
func (f *Folder) record(e finetune.Event) error {
	if f.closed {
		return errors.New("runfolder: record after Close")
	}
	switch e.Kind {
	case finetune.EventRunStart:
		return f.start(e.Fold, e.Run)
	case finetune.EventArtifact:
		r, err := f.run(e.Fold)
		if err != nil {
			return err
		}
		return f.put(filepath.Join(r.dir, e.Artifact.Name), jsonWriter(e.Artifact.Value))
	case finetune.EventEpoch:
		return f.epoch(e.Fold, e.Metrics)
	case finetune.EventCheckpoint:
		return f.checkpoint(e.Fold, e.Checkpoint)
	case finetune.EventRunEnd:
		return f.end(e.Fold, e.Result)
	case finetune.EventTopLosses:
		return f.topLosses(e.Fold, e.TopLosses)
	}
	return nil
}

func (f *Folder) start(fold int, rs *finetune.RunStart) error {
	r, err := f.run(fold)
	if err != nil {
		return err
	}
	if f.resumed {
		// A resumed run keeps exactly the epochs its checkpoint holds;
		// the file is rewritten when the next epoch is written, so a
		// resume that fails before it leaves the folder as it was.
		if r.history, err = keptEpochs(filepath.Join(r.dir, "metrics.jsonl"), fold, rs.Resumed); err != nil {
			return err
		}
		r.rewrite = true
	}
	r.config, r.plan = rs.Config, rs.Plan
	cfg := rs.Config
	if f.auto {
		// The folder was named for this run: a run of this file gets
		// a new one.
		cfg.Output.Dir = ""
	}
	err = f.put(filepath.Join(r.dir, "config.yaml"), func(w io.Writer) error {
		_, err := io.WriteString(w, finetune.ConfigYAML(cfg))
		return err
	})
	if err == nil && rs.Plan != nil {
		err = f.put(filepath.Join(r.dir, "plan.json"), jsonWriter(rs.Plan))
	}
	return err
}

// keptEpochs reads the first n epochs of fold from a metrics.jsonl.
func keptEpochs(path string, fold, n int) ([]finetune.EpochMetrics, error) {
	if n == 0 {
		return nil, nil
	}
	all, err := ReadMetrics(path)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	var kept []finetune.EpochMetrics
	for _, em := range all {
		if em.Fold == fold && len(kept) < n {
			kept = append(kept, em)
		}
	}
	if len(kept) < n {
		return nil, fmt.Errorf("resume: %s holds %s, the checkpoint %d", path, plural.Count(len(kept), "epoch"), n)
	}
	return kept, nil
}

func (f *Folder) epoch(fold int, em *finetune.EpochMetrics) error {
	if em == nil {
		return errors.New("runfolder: epoch event without metrics")
	}
	r, err := f.beginRun(fold)
	if err != nil {
		return err
	}
	if err := f.appendMetrics(r, *em); err != nil {
		return err
	}
	r.history = append(r.history, *em)
	f.tensorboard(r, *em)
	return nil
}

// appendMetrics adds em's line to the run's metrics.jsonl.
func (f *Folder) appendMetrics(r *run, em finetune.EpochMetrics) error {
	if err := f.rewriteMetrics(r); err != nil {
		return err
	}
	path := filepath.Join(r.dir, "metrics.jsonl")
	var line bytes.Buffer
	if err := writeLine(&line, em); err != nil {
		return err
	}
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = file.Write(line.Bytes())
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f.files[path] += int64(line.Len())
	return nil
}

// rewriteMetrics replaces a resumed run's metrics.jsonl with the epochs
// it kept, once.
func (f *Folder) rewriteMetrics(r *run) error {
	if !r.rewrite {
		return nil
	}
	r.rewrite = false
	return f.put(filepath.Join(r.dir, "metrics.jsonl"), func(w io.Writer) error {
		for _, em := range r.history {
			if err := writeLine(w, em); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeLine(w io.Writer, em finetune.EpochMetrics) error {
	b, err := finitejson.Marshal(em)
	if err == nil {
		_, err = w.Write(append(b, '\n'))
	}
	return err
}

// tensorboard writes an epoch's scalars.
func (f *Folder) tensorboard(r *run, em finetune.EpochMetrics) {
	f.board(r, func(tb *tfevents.Writer) error { return tb.Epoch(em) })
}

// board writes to the run's TensorBoard events with write, creating the
// file (with the plan's hyperparameters) first; a failure ends the run's
// TensorBoard events, not the run.
func (f *Folder) board(r *run, write func(*tfevents.Writer) error) {
	if !f.opts.Tensorboard {
		return
	}
	var err error
	if r.tb == nil {
		if r.tb, err = tfevents.Create(r.dir); err != nil {
			f.opts.Tensorboard = false
			f.warn("no TensorBoard events: %v", err)
			return
		}
		if r.plan != nil {
			err = r.tb.Text(0, "plan", planMarkdown(r.config, r.plan))
		}
	}
	if err == nil {
		err = write(r.tb)
	}
	f.files[r.tb.Path()] = r.tb.Size()
	if err != nil {
		f.opts.Tensorboard = false
		f.warn("no more TensorBoard events: %v", err)
	}
}

// boardImage writes a PNG to the run's TensorBoard events at its last
// epoch.
func (f *Folder) boardImage(r *run, tag string, b []byte) {
	f.board(r, func(tb *tfevents.Writer) error {
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			return err
		}
		return tb.Image(int64(len(r.history)), tag, b, cfg.Width, cfg.Height)
	})
}

func (f *Folder) checkpoint(fold int, c *finetune.CheckpointWrite) error {
	r, err := f.run(fold)
	if err != nil {
		return err
	}
	// The final path, not a temporary one: the engine records it (the
	// resume hint, a delta's path to its base) and writes atomically.
	path := filepath.Join(r.dir, c.Name+".safetensors")
	// The write syncs the file before its rename; the folder's sync below
	// makes the rename durable.
	err = c.Write(path)
	var info os.FileInfo
	if err == nil {
		info, err = os.Stat(path)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f.files[path] = info.Size()
	return syncDir(r.dir)
}

func (f *Folder) end(fold int, res *finetune.Result) error {
	if res == nil {
		return errors.New("runfolder: run end without a result")
	}
	r, err := f.beginRun(fold)
	if err != nil {
		return err
	}
	r.ended = true
	if err := f.rewriteMetrics(r); err != nil {
		return err
	}
	if err := f.put(filepath.Join(r.dir, "result.json"), jsonWriter(res.Summary())); err != nil {
		return err
	}
	curves, err := f.curves(r)
	if err != nil {
		return err
	}
	confusion, err := f.evaluations(r, res)
	if err != nil {
		return err
	}
	return f.put(filepath.Join(r.dir, "report.html"), func(w io.Writer) error {
		return writeReport(w, r, res, curves, confusion)
	})
}

// evaluations writes the final model's predictions.csv and confusion
// matrices: confusion.png is the test set's when the run has one, and
// the validation set's goes beside it in confusion_val.png; without a
// test set confusion.png is validation's. It returns the matrices' figures.
func (f *Folder) evaluations(r *run, res *finetune.Result) ([]figure, error) {
	var splits []Split
	type matrix struct {
		name, split string
		ev          *finetune.Evaluation
	}
	var matrices []matrix
	if res.Test != nil {
		splits = append(splits, Split{Name: "test", Images: res.Test.Images})
		matrices = append(matrices, matrix{"confusion.png", "test", res.Test})
	}
	if res.Val != nil {
		splits = append(splits, Split{Name: "validation", Images: res.Val.Images})
		name := "confusion.png"
		if res.Test != nil {
			name = "confusion_val.png"
		}
		matrices = append(matrices, matrix{name, "validation", res.Val})
	}
	if slices.ContainsFunc(splits, func(s Split) bool { return len(s.Images) > 0 }) {
		err := f.put(filepath.Join(r.dir, "predictions.csv"), func(w io.Writer) error {
			return WritePredictions(w, res.Classes, splits...)
		})
		if err != nil {
			return nil, err
		}
	}
	var figures []figure
	for _, m := range matrices {
		c := m.ev.Confusion
		title := fmt.Sprintf("%s: accuracy %.3f on %d images", m.split, c.Accuracy(), c.Total())
		png, err := f.putPNG(filepath.Join(r.dir, m.name), func(w io.Writer) error {
			return plot.Confusion(w, c, title)
		})
		if err != nil {
			return nil, err
		}
		figures = append(figures, figure{Caption: m.split, Src: dataURI(png)})
		f.boardImage(r, "confusion/"+m.split, png)
	}
	return figures, nil
}

// topLosses draws top_losses.png.
func (f *Folder) topLosses(fold int, tl *finetune.TopLossReport) error {
	if tl == nil {
		return errors.New("runfolder: top_losses event without images")
	}
	r, err := f.run(fold)
	if err != nil {
		return err
	}
	r.topLosses = tl
	if len(tl.Images) == 0 {
		return nil
	}
	title := fmt.Sprintf("%s: the %d images with the highest loss, Grad-CAM of the predicted class", tl.Split, len(tl.Images))
	r.topLossPNG, err = f.putPNG(filepath.Join(r.dir, "top_losses.png"), func(w io.Writer) error {
		return plot.Explanations(w, tl.Classes, tl.Images, title)
	})
	if err == nil {
		f.boardImage(r, "top_losses/"+tl.Split, r.topLossPNG)
	}
	return err
}

// curves draws the run's curves.png, if it has epochs, and returns it.
func (f *Folder) curves(r *run) ([]byte, error) {
	if len(r.history) == 0 {
		return nil, nil
	}
	return f.putPNG(filepath.Join(r.dir, "curves.png"), func(w io.Writer) error {
		return plot.Curves(w, r.history)
	})
}

// putPNG draws a picture, writes it to path as put does and returns it.
func (f *Folder) putPNG(path string, draw func(io.Writer) error) ([]byte, error) {
	b, err := render(draw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, f.put(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// beginRun begins the run and returns fold's record.
func (f *Folder) beginRun(fold int) (*run, error) {
	if err := f.begin(); err != nil {
		return nil, err
	}
	return f.run(fold)
}

// begin marks the run as begun: the writes held back until now are made
// and the "latest" link points here.
func (f *Folder) begin() error {
	if f.begun {
		return nil
	}
	f.begun = true
	for _, write := range f.pending {
		if err := write(); err != nil {
			return err
		}
	}
	f.pending = nil
	if f.latest != "" {
		f.link()
	}
	return nil
}

// link points the "latest" link beside the folder at it, replacing the
// link atomically; a "latest" that is not a link is left alone.
func (f *Folder) link() {
	if info, err := os.Lstat(f.latest); err == nil && info.Mode()&fs.ModeSymlink == 0 {
		f.warn("%s is not a link: left as it is (this run is %s)", f.latest, f.dir)
		return
	}
	tmp := filepath.Join(filepath.Dir(f.latest), fmt.Sprintf(".latest.tmp%d", os.Getpid()))
	os.Remove(tmp)
	err := os.Symlink(filepath.Base(f.dir), tmp)
	if err == nil {
		err = os.Rename(tmp, f.latest)
	}
	if err != nil {
		os.Remove(tmp)
		f.warn("%s not updated: %v", f.latest, err)
	}
}

// put writes path atomically with write, or holds the write back until
// the run begins.
func (f *Folder) put(path string, write func(io.Writer) error) error {
	do := func() error {
		var n countWriter
		err := WriteFile(path, func(w io.Writer) error {
			return write(io.MultiWriter(w, &n))
		})
		if err == nil {
			f.files[path] = int64(n)
		}
		return err
	}
	if !f.begun {
		f.pending = append(f.pending, do)
		return nil
	}
	return do()
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func jsonWriter(v any) func(io.Writer) error {
	return func(w io.Writer) error {
		b, err := finitejson.MarshalIndent(v, "", "  ")
		if err == nil {
			_, err = w.Write(append(b, '\n'))
		}
		return err
	}
}

// dirOf is the folder of a fold's files (fold -1: the folder itself).
func (f *Folder) dirOf(fold int) string {
	if fold < 0 {
		return f.dir
	}
	return filepath.Join(f.dir, fmt.Sprintf("fold%d", fold+1))
}

// run returns the record of fold, creating its folder.
func (f *Folder) run(fold int) (*run, error) {
	if r := f.runs[fold]; r != nil {
		return r, nil
	}
	r := &run{dir: f.dirOf(fold)}
	if fold >= 0 {
		made, err := mkdirAll(r.dir)
		if err != nil {
			return nil, err
		}
		f.made = append(made, f.made...)
	}
	f.runs[fold] = r
	return r, nil
}

// History returns the epochs recorded for fold (-1 outside
// cross-validation), those a resumed run kept included.
func (f *Folder) History(fold int) []finetune.EpochMetrics {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.runs[fold]; r != nil {
		return slices.Clone(r.history)
	}
	return nil
}

// Files returns the files the Folder wrote, by path.
func (f *Folder) Files() []File {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []File
	for path, n := range f.files {
		out = append(out, File{Path: path, Bytes: n})
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// Close ends the record and releases the folder. A run that has begun
// gets the curves of every run or fold that did not end (a failed or
// interrupted one); a run that has not leaves nothing behind: Close
// removes what the Folder created, its folder included. Close returns
// the first failed write (which Record returned too) and what closing
// itself failed to do.
func (f *Folder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	errs := []error{f.err}
	for _, fold := range slices.Sorted(maps.Keys(f.runs)) {
		r := f.runs[fold]
		if r.tb != nil {
			f.files[r.tb.Path()] = r.tb.Size()
			errs = append(errs, r.tb.Close())
		}
		if f.begun && !r.ended {
			_, err := f.curves(r)
			errs = append(errs, err)
		}
	}
	if !f.begun {
		errs = append(errs, f.discard())
	}
	if err := f.lock.release(); !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// discard removes what the Folder created: its folder if it made it,
// else the files and fold folders it wrote.
func (f *Folder) discard() error {
	var errs []error
	if !slices.Contains(f.made, f.dir) {
		for path := range f.files {
			errs = append(errs, os.Remove(path))
		}
		for _, d := range f.made {
			errs = append(errs, os.RemoveAll(d))
		}
	} else {
		errs = append(errs, os.RemoveAll(f.dir))
	}
	removeDirs(f.made)
	f.files = map[string]int64{}
	return errors.Join(errs...)
}

// holdsRun names the file that shows dir holds a run, "" if none.
func holdsRun(dir string) string {
	for _, name := range []string{"config.yaml", "metrics.jsonl", "fold1/config.yaml", "fold1/metrics.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return name
		}
	}
	return ""
}

// mkdirAll creates dir and its missing parents and returns the folders it
// created, innermost first.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return missing, nil
}

// removeDirs removes the folders of dirs that are empty, innermost first:
// a folder another run has written into meanwhile stays.
func removeDirs(dirs []string) {
	for _, d := range dirs {
		os.Remove(d)
	}
}

func (f *Folder) warn(format string, args ...any) {
	if f.opts.Warn != nil {
		f.opts.Warn(fmt.Sprintf(format, args...))
	}
}
