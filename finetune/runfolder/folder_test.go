package runfolder_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/finetune-go/finetune/finetune/runfolder/plot"
	"github.com/finetune-go/finetune/internal/snapshot"
	"github.com/stretchr/testify/require"
)

// epochs makes n epochs of fold, the last one best.
func epochs(fold, n int) []finetune.EpochMetrics {
	var out []finetune.EpochMetrics
	for i := range n {
		out = append(out, finetune.EpochMetrics{Fold: fold, Stage: "head", Epoch: i + 1, GlobalEpoch: i + 1,
			TrainLoss: 1 / float64(i+2), TrainAccuracy: 0.5 + 0.1*float64(i), ValLoss: 1 / (float64(i) + 1.5),
			ValAccuracy: 0.5 + 0.08*float64(i), LR: 1e-3, Best: i == n-1})
	}
	return out
}

func runStart(fold, resumed int) finetune.Event {
	return finetune.Event{Kind: finetune.EventRunStart, Fold: fold, Run: &finetune.RunStart{
		Config: finetune.Defaults(), Plan: &finetune.Plan{Device: "cpu", Precision: "fp32"}, Resumed: resumed}}
}

func epochEvent(em finetune.EpochMetrics) finetune.Event {
	return finetune.Event{Kind: finetune.EventEpoch, Fold: em.Fold, Metrics: &em}
}

// checkpoint is a checkpoint event whose file holds content.
func checkpoint(fold int, name, content string) finetune.Event {
	return finetune.Event{Kind: finetune.EventCheckpoint, Fold: fold, Checkpoint: &finetune.CheckpointWrite{
		Name: name, Write: func(path string) error { return os.WriteFile(path, []byte(content), 0o644) }}}
}

func runEnd(fold int, history []finetune.EpochMetrics) finetune.Event {
	conf := finetune.NewConfusion([]string{"a", "b"})
	conf.Add([]int64{0, 1, 1}, []int64{0, 1, 0})
	return finetune.Event{Kind: finetune.EventRunEnd, Fold: fold, Result: &finetune.Result{Classes: conf.Classes,
		History: history, Best: history[len(history)-1], Val: &finetune.Evaluation{Accuracy: 2.0 / 3, Confusion: conf}}}
}

// record feeds f the events, failing on any error.
func record(t *testing.T, f *runfolder.Folder, events ...finetune.Event) {
	t.Helper()
	for _, e := range events {
		require.NoError(t, f.Record(e), e.Kind)
	}
}

// completeRun records a whole run of n epochs into f and closes it.
func completeRun(t *testing.T, f *runfolder.Folder, n int) {
	t.Helper()
	history := epochs(-1, n)
	record(t, f, runStart(-1, 0), finetune.Event{Kind: finetune.EventArtifact, Fold: -1,
		Artifact: &finetune.Artifact{Name: "shift.json", Value: map[string]float64{"shift": 0.1}}})
	for _, em := range history {
		record(t, f, epochEvent(em), checkpoint(-1, finetune.CheckpointLast, fmt.Sprint("epoch ", em.GlobalEpoch)))
	}
	record(t, f, checkpoint(-1, finetune.CheckpointBest, "best"), runEnd(-1, history))
	require.NoError(t, f.Close())
}

func names(files []runfolder.File) []string {
	var out []string
	for _, f := range files {
		out = append(out, filepath.Base(f.Path))
	}
	return out
}

// TestRunFiles checks a whole run's layout, the link to the newest run
// and the sizes Files reports.
func TestRunFiles(t *testing.T) {
	runs := filepath.Join(t.TempDir(), "runs")
	f, err := runfolder.New(runs, runfolder.Options{Tensorboard: true})
	require.NoError(t, err)
	require.Regexp(t, `^\d{8}-\d{6}$`, filepath.Base(f.Dir()))
	completeRun(t, f, 3)
	files := f.Files()
	require.Equal(t, []string{"best.safetensors", "config.yaml", "confusion.png", "curves.png"}, names(files)[:4])
	require.Regexp(t, `^events\.out\.tfevents\.`, names(files)[4])
	require.Equal(t, []string{"last.safetensors", "metrics.jsonl", "plan.json", "report.html", "result.json", "shift.json"}, names(files)[5:])
	for _, file := range files {
		info, err := os.Stat(file.Path)
		require.NoError(t, err)
		require.Equal(t, info.Size(), file.Bytes, file.Path)
	}
	history, err := runfolder.ReadMetrics(filepath.Join(f.Dir(), "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, epochs(-1, 3), history)
	require.Equal(t, history, f.History(-1))
	last, err := os.ReadFile(filepath.Join(f.Dir(), "last.safetensors"))
	require.NoError(t, err)
	require.Equal(t, "epoch 3", string(last))
	yaml, err := os.ReadFile(filepath.Join(f.Dir(), "config.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(yaml), "dir: \"\"", "a rerun of a named-for-the-run config gets a new folder")
	require.NoFileExists(t, filepath.Join(f.Dir(), ".lock"))

	// A second run in the same second gets a name of its own, and
	// latest moves to it only when its first epoch is recorded.
	g, err := runfolder.New(runs, runfolder.Options{})
	require.NoError(t, err)
	require.NotEqual(t, f.Dir(), g.Dir())
	record(t, g, runStart(-1, 0))
	target, err := os.Readlink(filepath.Join(runs, "latest"))
	require.NoError(t, err)
	require.Equal(t, filepath.Base(f.Dir()), target)
	completeRun(t, g, 1)
	target, err = os.Readlink(filepath.Join(runs, "latest"))
	require.NoError(t, err)
	require.Equal(t, filepath.Base(g.Dir()), target)
}

// TestFoldFolders checks that a cross-validation's folds get folders of
// their own.
func TestFoldFolders(t *testing.T) {
	f, err := runfolder.Open(filepath.Join(t.TempDir(), "cv"), runfolder.Options{})
	require.NoError(t, err)
	for fold := range 2 {
		history := epochs(fold, 2)
		record(t, f, runStart(fold, 0), epochEvent(history[0]), epochEvent(history[1]), runEnd(fold, history))
	}
	record(t, f, finetune.Event{Kind: finetune.EventArtifact, Fold: -1, Artifact: &finetune.Artifact{Name: "cv.json", Value: []int{1}}})
	require.NoError(t, f.Close())
	for _, name := range []string{"cv.json", "fold1/metrics.jsonl", "fold1/curves.png", "fold2/result.json", "fold2/config.yaml"} {
		require.FileExists(t, filepath.Join(f.Dir(), name))
	}
	history, err := runfolder.ReadMetrics(filepath.Join(f.Dir(), "fold2", "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, epochs(1, 2), history)
}

// TestFailedRunLeavesNothing: a run that ends before its first epoch
// removes all it created and never touches another run's files.
func TestFailedRunLeavesNothing(t *testing.T) {
	root := t.TempDir()
	runs := filepath.Join(root, "runs")
	good, err := runfolder.New(runs, runfolder.Options{})
	require.NoError(t, err)
	completeRun(t, good, 2)
	before := snapshot.Take(t, root)

	// A new folder: the run starts, writes its report, and fails.
	f, err := runfolder.New(runs, runfolder.Options{})
	require.NoError(t, err)
	record(t, f, runStart(-1, 0), finetune.Event{Kind: finetune.EventArtifact, Fold: -1,
		Artifact: &finetune.Artifact{Name: "search.json", Value: []string{"lr"}}})
	require.NoError(t, f.Close())
	require.NoDirExists(t, f.Dir())
	require.Empty(t, f.Files())
	require.Equal(t, before, snapshot.Take(t, root))

	// A named folder in new parents: all of them go.
	f, err = runfolder.Open(filepath.Join(root, "a", "b"), runfolder.Options{})
	require.NoError(t, err)
	record(t, f, runStart(-1, 0))
	require.NoError(t, f.Close())
	require.NoDirExists(t, filepath.Join(root, "a"))

	// The good run's folder, named: refused, untouched.
	_, err = runfolder.Open(good.Dir(), runfolder.Options{})
	require.ErrorContains(t, err, good.Dir()+" already holds a run (config.yaml)")
	require.Equal(t, before, snapshot.Take(t, root))

	// A resume that fails before its first epoch leaves the run as it was.
	f, err = runfolder.Resume(filepath.Join(good.Dir(), "last.safetensors"), runfolder.Options{})
	require.NoError(t, err)
	record(t, f, runStart(-1, 1))
	require.NoError(t, f.Close())
	require.Equal(t, before, snapshot.Take(t, root))
}

// TestSecondWriterRefused: a folder in use is refused with its writer's
// PID, whether the writer is this process or another.
func TestSecondWriterRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	f, err := runfolder.Open(dir, runfolder.Options{})
	require.NoError(t, err)
	_, err = runfolder.Open(dir, runfolder.Options{})
	require.EqualError(t, err, fmt.Sprintf("%s is in use by process %d", dir, os.Getpid()))
	require.NoError(t, f.Close())

	// Another process holds it; when it dies, its lock is taken over.
	child := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$")
	child.Env = append(os.Environ(), "RUNFOLDER_HOLD="+dir)
	out, err := child.StdoutPipe()
	require.NoError(t, err)
	hold, err := child.StdinPipe() // the child holds the lock until killed
	require.NoError(t, err)
	defer hold.Close()
	require.NoError(t, child.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)
	_, err = runfolder.Open(dir, runfolder.Options{})
	require.EqualError(t, err, fmt.Sprintf("%s is in use by process %d", dir, child.Process.Pid))
	require.NoError(t, child.Process.Kill())
	require.Error(t, child.Wait())

	var warnings []string
	f, err = runfolder.Open(dir, runfolder.Options{Warn: func(msg string) { warnings = append(warnings, msg) }})
	require.NoError(t, err)
	require.Equal(t, []string{fmt.Sprintf("%s: took over the lock left by process %d, which is no longer running",
		dir, child.Process.Pid)}, warnings)
	require.NoError(t, f.Close())
}

// TestLockHolderProcess is the child of TestSecondWriterRefused: it
// holds the folder's lock until it is killed.
func TestLockHolderProcess(t *testing.T) {
	dir := os.Getenv("RUNFOLDER_HOLD")
	if dir == "" {
		t.Skip("the child of TestSecondWriterRefused")
	}
	_, err := runfolder.Open(dir, runfolder.Options{})
	require.NoError(t, err)
	fmt.Println("locked")
	io.ReadAll(os.Stdin)
}

// TestStaleLockTakenOver: a lock file naming a dead process does not
// keep the folder locked.
func TestStaleLockTakenOver(t *testing.T) {
	dir := t.TempDir()
	gone := exec.Command("true")
	require.NoError(t, gone.Run())
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".lock"), []byte(strconv.Itoa(gone.Process.Pid)+"\n"), 0o644))
	var warnings []string
	f, err := runfolder.Open(dir, runfolder.Options{Warn: func(msg string) { warnings = append(warnings, msg) }})
	require.NoError(t, err)
	require.Len(t, warnings, 1)
	require.Contains(t, warnings[0], fmt.Sprintf("process %d, which is no longer running", gone.Process.Pid))
	pid, err := os.ReadFile(filepath.Join(dir, ".lock"))
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(pid))
	require.NoError(t, f.Close())
}

// TestResumeIntoCheckpointFolder: a resumed run writes into the folder
// of its checkpoint (a copy of a run here), whatever output.dir says and
// wherever the process runs, and each epoch appears once.
func TestResumeIntoCheckpointFolder(t *testing.T) {
	root := t.TempDir()
	orig, err := runfolder.Open(filepath.Join(root, "orig"), runfolder.Options{})
	require.NoError(t, err)
	completeRun(t, orig, 3)
	require.NoError(t, os.CopyFS(filepath.Join(root, "copy"), os.DirFS(orig.Dir())))
	before := snapshot.Take(t, orig.Dir())

	elsewhere := filepath.Join(root, "elsewhere")
	require.NoError(t, os.Mkdir(elsewhere, 0o755))
	t.Chdir(elsewhere)
	f, err := runfolder.Resume(filepath.Join("..", "copy", "last.safetensors"), runfolder.Options{})
	require.NoError(t, err)
	require.Equal(t, filepath.Join("..", "copy"), f.Dir())
	// The checkpoint held 2 epochs: the third, written before the
	// interruption, is dropped and trained again.
	start := runStart(-1, 2)
	start.Run.Config.Output.Dir = orig.Dir()
	record(t, f, start)
	require.Equal(t, epochs(-1, 3)[:2], f.History(-1))
	history := epochs(-1, 4)
	history[2].TrainLoss = 0.123 // the epoch trained again differs
	record(t, f, epochEvent(history[2]), epochEvent(history[3]), runEnd(-1, history))
	require.NoError(t, f.Close())

	got, err := runfolder.ReadMetrics(filepath.Join(root, "copy", "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, history, got)
	require.Equal(t, history, f.History(-1))
	require.Equal(t, before, snapshot.Take(t, orig.Dir()))
	entries, err := os.ReadDir(elsewhere)
	require.NoError(t, err)
	require.Empty(t, entries)
}

// TestStaleTempFilesRemoved: the temporary files a crash left are
// removed once the lock is held; other files stay.
func TestStaleTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	stale := []string{".last.safetensors.tmp123456", ".curves.png.tmp9", "fold2/.best.safetensors.tmp77"}
	kept := []string{"notes.tmp", "fold2/data.txt"}
	for _, name := range append(append([]string(nil), stale...), kept...) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "last.safetensors"), []byte("x"), 0o644))
	var warnings []string
	f, err := runfolder.Resume(filepath.Join(dir, "last.safetensors"), runfolder.Options{Warn: func(msg string) { warnings = append(warnings, msg) }})
	require.NoError(t, err)
	for _, name := range stale {
		require.NoFileExists(t, filepath.Join(dir, name))
	}
	for _, name := range kept {
		require.FileExists(t, filepath.Join(dir, name))
	}
	require.Len(t, warnings, 1)
	require.Contains(t, warnings[0], "removed 3 temporary files")
	require.NoError(t, f.Close())
}

// errDiskFull is what a full disk returns.
var errDiskFull = syscall.ENOSPC

// shortWriter fails with errDiskFull once n bytes are written.
type shortWriter struct {
	w io.Writer
	n int
}

func (s *shortWriter) Write(p []byte) (int, error) {
	if len(p) > s.n {
		k, _ := s.w.Write(p[:s.n])
		s.n = 0
		return k, errDiskFull
	}
	s.n -= len(p)
	return s.w.Write(p)
}

// TestAtomicWrites: a plot or checkpoint whose write fails leaves the
// previous file whole and no temporary file.
func TestAtomicWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "curves.png")
	history := epochs(-1, 3)
	require.NoError(t, runfolder.WriteFile(path, func(w io.Writer) error { return plot.Curves(w, history[:2]) }))
	before := snapshot.Take(t, dir)
	err := runfolder.WriteFile(path, func(w io.Writer) error {
		return plot.Curves(&shortWriter{w: w, n: 4000}, history)
	})
	require.ErrorIs(t, err, errDiskFull)
	require.Equal(t, before, snapshot.Take(t, dir))

	f, err := runfolder.Resume(path, runfolder.Options{})
	require.NoError(t, err)
	record(t, f, runStart(-1, 0), epochEvent(history[0]), checkpoint(-1, finetune.CheckpointLast, "whole"))
	before = snapshot.Take(t, dir)
	// The engine's checkpoint writes are atomic (nn.WriteSafetensors);
	// one that fails half-way leaves the old file and stops the record.
	fail := finetune.Event{Kind: finetune.EventCheckpoint, Fold: -1, Checkpoint: &finetune.CheckpointWrite{
		Name: finetune.CheckpointLast, Write: func(path string) error {
			return runfolder.WriteFile(path, func(w io.Writer) error {
				_, err := io.WriteString(w, "torn")
				return errors.Join(err, errDiskFull)
			})
		}}}
	require.ErrorIs(t, f.Record(fail), errDiskFull)
	require.Equal(t, before, snapshot.Take(t, dir))
	require.ErrorIs(t, f.Record(epochEvent(history[1])), errDiskFull, "the error is sticky")
	require.ErrorIs(t, f.Close(), errDiskFull)
	require.FileExists(t, filepath.Join(dir, "curves.png"), "a failed run keeps its curves")
}

func TestResumeEndsAtOnce(t *testing.T) {
	f, err := runfolder.Open(t.TempDir(), runfolder.Options{})
	require.NoError(t, err)
	completeRun(t, f, 3)
	f, err = runfolder.Resume(filepath.Join(f.Dir(), "last.safetensors"), runfolder.Options{})
	require.NoError(t, err)
	kept := epochs(-1, 3)[:2]
	record(t, f, runStart(-1, 2), runEnd(-1, kept))
	require.NoError(t, f.Close())
	got, err := runfolder.ReadMetrics(filepath.Join(f.Dir(), "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, kept, got)
}

// TestDivergedRunIsRecorded: a run whose loss became NaN or infinite is
// recorded, with null for the numbers JSON cannot hold, instead of
// failing with "json: unsupported value: NaN".
func TestDivergedRunIsRecorded(t *testing.T) {
	f, err := runfolder.New(filepath.Join(t.TempDir(), "runs"), runfolder.Options{})
	require.NoError(t, err)
	history := epochs(-1, 2)
	history[1].TrainLoss, history[1].ValLoss = math.NaN(), math.Inf(1)
	record(t, f, runStart(-1, 0))
	for _, em := range history {
		record(t, f, epochEvent(em))
	}
	end := runEnd(-1, history)
	end.Result.Val.Loss = math.NaN()
	record(t, f, end)
	require.NoError(t, f.Close())
	metrics, err := os.ReadFile(filepath.Join(f.Dir(), "metrics.jsonl"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(metrics)), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[1], `"train_loss":null`)
	require.Contains(t, lines[1], `"val_loss":null`)
	result, err := os.ReadFile(filepath.Join(f.Dir(), "result.json"))
	require.NoError(t, err)
	require.Contains(t, string(result), `"loss": null`)
}
