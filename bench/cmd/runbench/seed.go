package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The seed scenario measures what a user sees: the finetune command and
// the plain PyTorch loop (bench/py/seed.py), each run from start to end
// as its own process on the same image folders and the same weights, in
// turn, A B A B. Each run trains a head epoch (frozen backbone, BatchNorm
// on stored statistics, augmentation on) and a layer4 epoch (stem to
// layer3 frozen), each followed by validation, in fp32 with 32 images a
// batch, without feature caching, linear probe or search.

// seedScenario is what a seed run trains on.
type seedScenario struct {
	arch                   string
	perClass               int
	train, val, weights    string
	trainImages, valImages int
}

// steps is the number of batches of n images.
func steps(n int) int { return (n + seedBatch - 1) / seedBatch }

const seedBatch = 32

// Parts of a run. A stage's train part runs from its start to the end of
// its last step, its val part from there to the end of validation.
const (
	partStart = "start-up" // from the process's start to the first stage
	partTrain = "train"
	partVal   = "val"
	partTest  = "test" // the final model on the test folder (seedwhole)
)

var seedStages = []string{"head", "layer4"}

// seedPart is one part of one run, with the process's resources spent in
// it (children it waited for included: PyTorch's DataLoader workers).
type seedPart struct {
	Stage string `json:"stage,omitempty"`
	Part  string `json:"part"`
	// Seconds is the tool's own measure where it has one: finetune's
	// EpochMetrics.Seconds for train, the loop's time.perf_counter for
	// PyTorch; else Wall.
	Seconds float64 `json:"seconds"`
	// Wall is the time between the output lines that bound the part, as
	// the runner read them.
	Wall     float64 `json:"wall_s"`
	User     float64 `json:"user_s"`
	Sys      float64 `json:"sys_s"`
	MinFlt   int64   `json:"minor_faults"`
	Steps    int     `json:"steps,omitempty"`
	Accuracy float64 `json:"accuracy,omitempty"`
}

// seedRun is one process of one tool.
type seedRun struct {
	Tool   string     `json:"tool"` // "finetune" or "pytorch"
	Index  int        `json:"run"`
	Load   string     `json:"load_start"` // /proc/loadavg before the run
	Wall   float64    `json:"wall_s"`
	User   float64    `json:"user_s"` // getrusage of the process, children included
	Sys    float64    `json:"sys_s"`
	MinFlt int64      `json:"minor_faults"`
	MaxRSS int64      `json:"max_rss_bytes"`
	Parts  []seedPart `json:"parts"`
}

// part returns the run's part of stage, or nil.
func (r *seedRun) part(stage, part string) *seedPart {
	for i := range r.Parts {
		if r.Parts[i].Stage == stage && r.Parts[i].Part == part {
			return &r.Parts[i]
		}
	}
	return nil
}

// procSample is a process's resources so far, read from /proc/PID/stat,
// children it has waited for included.
type procSample struct {
	at        time.Time
	user, sys float64
	minflt    int64
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture Go runs on.
const clockTicks = 100

// parseStat reads a sample out of a /proc/PID/stat line.
func parseStat(line string) (procSample, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return procSample{}, fmt.Errorf("/proc stat %q: no command name", line)
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 of proc(5): minflt is field 10, cminflt 11, utime
	// 14, stime 15, cutime 16, cstime 17.
	if len(f) < 15 {
		return procSample{}, fmt.Errorf("/proc stat %q: %d fields", line, len(f)+2)
	}
	var v [6]int64
	for k, idx := range []int{7, 8, 11, 12, 13, 14} {
		n, err := strconv.ParseInt(f[idx], 10, 64)
		if err != nil {
			return procSample{}, fmt.Errorf("/proc stat field %d: %w", idx+3, err)
		}
		v[k] = n
	}
	return procSample{minflt: v[0] + v[1], user: float64(v[2]+v[4]) / clockTicks, sys: float64(v[3]+v[5]) / clockTicks}, nil
}

func readStat(pid int) (procSample, error) {
	buf, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	s, err := parseStat(string(buf))
	s.at = time.Now()
	return s, err
}

// between is the part from a to b.
func between(stage, part string, a, b procSample) seedPart {
	wall := b.at.Sub(a.at).Seconds()
	return seedPart{Stage: stage, Part: part, Seconds: wall, Wall: wall, User: b.user - a.user, Sys: b.sys - a.sys,
		MinFlt: b.minflt - a.minflt}
}

// seedLine is an output line of either tool: finetune's JSON events
// (finetune.Event) and bench/py/seed.py's lines share these keys.
type seedLine struct {
	Event   string `json:"event"`
	Stage   string `json:"stage"`
	Message string `json:"message"`
	Step    int    `json:"step"`
	Steps   int    `json:"steps"`
	// finetune's summary.
	Val, Test *struct {
		Accuracy float64 `json:"accuracy"`
	}
	Best *struct {
		Stage string `json:"stage"`
	}
	// finetune's epoch events.
	Metrics *struct {
		Seconds     float64 `json:"seconds"`
		ValAccuracy float64 `json:"val_accuracy"`
	} `json:"metrics"`
	// PyTorch's lines.
	Seconds  float64 `json:"seconds"`
	Accuracy float64 `json:"accuracy"`
	Threads  int     `json:"threads"`
}

// splitter turns a tool's output lines, each with the sample taken as it
// arrived, into the run's parts; begin gives it the process's start.
type splitter interface {
	begin(s procSample)
	line(l seedLine, s procSample) error
	parts() []seedPart
}

// finetuneSplit splits finetune's event stream: a stage event starts a
// stage's train part, the step event with step == steps ends it, the
// epoch event (after validation and the copy of the best weights) ends
// the val part. The train part's Seconds is the epoch's own
// EpochMetrics.Seconds.
type finetuneSplit struct {
	trainSteps, valSteps int
	start, stage, end    procSample
	inStage              string
	out                  []seedPart
}

func (f *finetuneSplit) begin(s procSample) { f.start = s }

func (f *finetuneSplit) line(l seedLine, s procSample) error {
	switch l.Event {
	case "error":
		return fmt.Errorf("finetune: %s", l.Message)
	case "stage":
		if len(f.out) == 0 {
			f.out = append(f.out, between("", partStart, f.start, s))
		}
		f.stage, f.inStage = s, l.Stage
	case "step":
		if l.Step == l.Steps {
			f.end = s
		}
	case "epoch":
		if l.Metrics == nil || l.Stage != f.inStage || f.end.at.IsZero() {
			return fmt.Errorf("finetune: epoch event of stage %q out of order", l.Stage)
		}
		tr := between(l.Stage, partTrain, f.stage, f.end)
		tr.Seconds, tr.Steps = l.Metrics.Seconds, f.trainSteps
		va := between(l.Stage, partVal, f.end, s)
		va.Steps, va.Accuracy = f.valSteps, l.Metrics.ValAccuracy
		f.out = append(f.out, tr, va)
		f.end = procSample{}
	}
	return nil
}

func (f *finetuneSplit) parts() []seedPart { return f.out }

// pytorchSplit splits bench/py/seed.py's lines: each ends a part that
// began with the line before it.
type pytorchSplit struct {
	threads int
	last    procSample
	out     []seedPart
}

func (p *pytorchSplit) begin(s procSample) { p.last = s }

func (p *pytorchSplit) line(l seedLine, s procSample) error {
	switch l.Event {
	case "ready":
		if l.Threads != p.threads {
			return fmt.Errorf("pytorch: %d threads, want %d", l.Threads, p.threads)
		}
		p.out = append(p.out, between("", partStart, p.last, s))
	case partTrain, partVal, partTest:
		pt := between(l.Stage, l.Event, p.last, s)
		pt.Seconds, pt.Steps, pt.Accuracy = l.Seconds, l.Steps, l.Accuracy
		p.out = append(p.out, pt)
	default:
		return fmt.Errorf("pytorch: unexpected line %q", l.Event)
	}
	p.last = s
	return nil
}

func (p *pytorchSplit) parts() []seedPart { return p.out }

// checkParts makes sure a run reported every part of both stages.
func checkParts(r *seedRun) error {
	for _, st := range seedStages {
		for _, pt := range []string{partTrain, partVal} {
			if r.part(st, pt) == nil {
				return fmt.Errorf("%s run %d: no %s part of stage %s", r.Tool, r.Index, pt, st)
			}
		}
	}
	return nil
}

// runSeedTool runs cmd to its end, splitting its standard output with
// sp, and returns the run with its resources.
func runSeedTool(cmd *exec.Cmd, tool string, index int, sp splitter) (*seedRun, error) {
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	load := loadavg()
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	sp.begin(procSample{at: began})
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var lineErr error
	for sc.Scan() {
		s, err := readStat(cmd.Process.Pid)
		if err == nil && lineErr == nil {
			var l seedLine
			if err = json.Unmarshal(sc.Bytes(), &l); err == nil {
				err = sp.line(l, s)
			} else {
				err = fmt.Errorf("%s: %q: %w", tool, sc.Text(), err)
			}
		}
		if err != nil && lineErr == nil {
			lineErr = err
			cmd.Process.Kill()
		}
	}
	if lineErr == nil {
		lineErr = sc.Err()
	}
	io.Copy(io.Discard, out)
	waitErr := cmd.Wait()
	r := &seedRun{Tool: tool, Index: index, Load: load, Wall: time.Since(began).Seconds()}
	if lineErr != nil {
		return nil, lineErr
	}
	if waitErr != nil {
		return nil, fmt.Errorf("%s: %w", tool, waitErr)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return nil, fmt.Errorf("%s: no rusage", tool)
	}
	r.User = time.Duration(ru.Utime.Nano()).Seconds()
	r.Sys = time.Duration(ru.Stime.Nano()).Seconds()
	r.MinFlt = ru.Minflt
	r.MaxRSS = ru.Maxrss << 10 // KiB on Linux
	r.Parts = sp.parts()
	return r, nil
}

// finetuneArgs is the finetune command of the seed scenario: the
// defaults a user gets, except what makes the two tools do the same work
// (no probe, search or feature caching; a plain linear head without
// dropout, randomly initialised; stored BatchNorm statistics; a constant
// learning rate; fp32) and one epoch per stage.
func finetuneArgs(sc seedScenario, threads int, dir string) []string {
	return []string{"run", "--json",
		"--data.train", sc.train, "--data.val", sc.val, "--data.workers", strconv.Itoa(threads),
		"--data.batch_size", strconv.Itoa(seedBatch), "--data.image_size", "224",
		"--model.arch", sc.arch, "--model.weights", sc.weights,
		"--model.head.init", "random", "--model.head.dropout", "0",
		"--probe=false", "--search", "off",
		"--train.batchnorm", "frozen", "--train.cache_features", "off", "--train.precision", "fp32",
		"--train.optimizer", "adamw", "--train.lr", "0.001", "--train.weight_decay", "0.01",
		"--train.label_smoothing", "0.1", "--train.schedule", "constant",
		"--stages", "head:1:all,layer4:1:layer3:0.1",
		"--device", "cpu", "--output.dir", dir,
	}
}

// seedOnce runs one tool once.
func seedOnce(o options, sc seedScenario, tool string, index int) (*seedRun, error) {
	tmp, err := os.MkdirTemp("", "seedbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var cmd *exec.Cmd
	var sp splitter
	if tool == "finetune" {
		cmd = exec.Command(o.finetune, finetuneArgs(sc, o.threads, filepath.Join(tmp, "run"))...)
		sp = &finetuneSplit{trainSteps: steps(sc.trainImages), valSteps: steps(sc.valImages)}
	} else {
		cmd = exec.Command(o.python, o.seedScript, "train", "--train", sc.train, "--val", sc.val,
			"--weights", sc.weights, "--arch", sc.arch, "--batch", strconv.Itoa(seedBatch),
			"--workers", strconv.Itoa(o.threads), "--threads", strconv.Itoa(o.threads))
		sp = &pytorchSplit{threads: o.threads}
	}
	// The run's folder is its working directory, so that no
	// ./finetune.yaml is read.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), fmt.Sprintf("OMP_NUM_THREADS=%d", o.threads))
	r, err := runSeedTool(cmd, tool, index, sp)
	if err != nil {
		return nil, err
	}
	return r, checkParts(r)
}

// seedSetup resolves o's paths and writes the seed scenario's data and
// weights once; it returns the scenario and the number of runs of each
// tool.
func seedSetup(o *options) (seedScenario, int, error) {
	sc := seedScenario{arch: "resnet50", perClass: 1000}
	runs := o.seedRuns
	if o.quick {
		sc = seedScenario{arch: "resnet18", perClass: 40}
		runs = 1
	}
	sc.trainImages = 2 * (sc.perClass * 4 / 5)
	sc.valImages = 2*sc.perClass - sc.trainImages
	// The tools run in a folder of their own (see seedOnce).
	var err error
	for _, p := range []*string{&o.finetune, &o.seedScript, &o.seedDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return sc, 0, err
		}
	}
	if sc.train, sc.val, err = seedData(o.mnist, o.seedDir, sc.perClass); err != nil {
		return sc, 0, fmt.Errorf("data: %w", err)
	}
	if sc.weights, err = seedWeights(*o, o.seedDir, sc.arch); err != nil {
		return sc, 0, err
	}
	return sc, runs, nil
}

// seed runs the seed scenario: o.seedRuns runs of each tool in turn.
func seed(o options) (*seedResults, error) {
	sc, runs, err := seedSetup(&o)
	if err != nil {
		return nil, err
	}
	fmt.Printf("\n== seed: %s at 224, 2 classes × %d JPEGs of %d×%d (%d train, %d val), finetune run against the PyTorch loop, runs of each: %d ==\n",
		sc.arch, sc.perClass, seedSide, seedSide, sc.trainImages, sc.valImages, runs)
	fmt.Printf("data %s, %s; weights %s\n", sc.train, sc.val, sc.weights)
	sr := &seedResults{Arch: sc.arch, PerClass: sc.perClass, TrainImages: sc.trainImages, ValImages: sc.valImages,
		Batch: seedBatch, Threads: o.threads, Start: time.Now().Format(time.RFC3339), Data: filepath.Dir(sc.train), Weights: sc.weights,
		Command: append([]string{"finetune"}, finetuneArgs(sc, o.threads, "DIR")...)}
	order := []string{"finetune", "pytorch"}
	if pyFirst {
		order = []string{"pytorch", "finetune"}
	}
	for i := range runs {
		for _, tool := range order {
			r, err := seedOnce(o, sc, tool, i+1)
			if err != nil {
				return nil, err
			}
			fmt.Println(r)
			sr.Runs = append(sr.Runs, r)
		}
	}
	sr.End = time.Now().Format(time.RFC3339)
	sr.summarise()
	return sr, nil
}

// seedCacheDir is the default -seed-dir.
func seedCacheDir() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "finetune", "bench", "seed")
}

func (r *seedRun) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %s run %d (load %s): %.1f s, CPU %.1f s user %.1f s system, peak RSS %.0f MiB;", r.Tool, r.Index,
		r.Load, r.Wall, r.User, r.Sys, mib(r.MaxRSS))
	for _, p := range r.Parts {
		name := p.Part
		if p.Stage != "" {
			name = p.Stage + " " + p.Part
		}
		fmt.Fprintf(&b, "  %s %.2f s", name, p.Seconds)
	}
	return b.String()
}
