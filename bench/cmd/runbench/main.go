// Command runbench compares this project with PyTorch on the same
// libtorch: it starts the Go side (bench/cmd/gowork) and PyTorch's
// (bench/py/work.py, run with Debian's /usr/bin/python3) of each
// benchmark as long-lived processes, warms both up, then has them run
// their measured blocks in turn, A B A B …, so that whatever else runs on
// the machine weighs on both sides alike. It prints every block, then the
// medians and the ratios Go/PyTorch, and writes them as JSON (-json).
//
// Run it through bench/run.sh, which builds the Go side and sets the
// thread count in the environment (OMP_NUM_THREADS) as -threads sets it
// in both libraries (torch.SetNumThreads, torch.set_num_threads).
//
// The benchmarks (-only picks some, comma-separated):
//
//	train50  ResNet50 full training step, batch 8 at 224×224
//	train50b16, train50b32
//	         the same at batch 16 and 32
//	train18  ResNet18 full training step, batch 32 at 64×64, then
//	         1,000 steps for RSS growth (step 100 → step 1,000)
//	frozen   frozen-backbone fine-tuning epoch, ResNet50, 512 images at
//	         160×160, batch 32: PyTorch's plain loop against finetune
//	         with cached features and with caching off
//	infer50  eval-mode inference, ResNet50, batch 16 at 224×224
//	seed     the seed scenario, what a user sees: the finetune command
//	         (-finetune, built from cmd/finetune) against the plain
//	         PyTorch loop (bench/py/seed.py), each run from start to end
//	         -seed-runs times, in turn, fine-tuning ResNet50 at 224 on
//	         1,600 JPEGs of two classes (validated on 400) for a head
//	         epoch and a layer4 epoch; the images are written once from
//	         Fashion-MNIST under -seed-dir. With -quick it is a smoke run:
//	         ResNet18, 2 × 40 images, one run of each tool
//	seedwhole
//	         the seed scenario's whole run: finetune's default run, from
//	         the command to a trained model with its test accuracy (1,000
//	         test JPEGs), against the PyTorch loop's head epoch, in
//	         -seed-runs rounds (not in the default list)
//
// Each process is fresh, so its VmHWM is the peak RSS of its benchmark.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/finetune-go/finetune/internal/fashionmnist"
)

type options struct {
	gowork, python, script string
	threads, pairs         int
	quick                  bool
	cpuprofile             string
	// The seed scenario's.
	finetune, seedScript, seedDir, mnist string
	seedRuns                             int
}

func main() {
	var o options
	flag.StringVar(&o.gowork, "gowork", "bench/bin/gowork", "the Go side, built from bench/cmd/gowork")
	flag.StringVar(&o.python, "python", "/usr/bin/python3", "python with Debian's python3-torch")
	flag.StringVar(&o.script, "script", "bench/py/work.py", "the PyTorch side")
	flag.IntVar(&o.threads, "threads", 2, "intra-op threads of both libraries")
	flag.IntVar(&o.pairs, "pairs", 7, "measured A/B pairs after warm-up (frozen: rounds)")
	flag.BoolVar(&o.quick, "quick", false, "short blocks, a short RSS run and the seed scenario's smoke run, for development")
	flag.StringVar(&o.finetune, "finetune", "bench/bin/finetune", "the finetune command, built from cmd/finetune (seed)")
	flag.StringVar(&o.seedScript, "seed-script", "bench/py/seed.py", "the PyTorch side of the seed scenario")
	flag.StringVar(&o.seedDir, "seed-dir", seedCacheDir(), "where the seed scenario's images and weights are written once")
	flag.StringVar(&o.mnist, "fashion-mnist", fashionmnist.DefaultDir, "Fashion-MNIST's files (Debian's dataset-fashion-mnist)")
	flag.IntVar(&o.seedRuns, "seed-runs", 3, "runs of each tool in the seed scenario")
	only := flag.String("only", "train50,train50b16,train50b32,train18,frozen,infer50,seed", "benchmarks to run, comma-separated")
	seedJSON := flag.String("seed-json", "", "write the seed scenario's results to this file")
	wholeJSON := flag.String("seedwhole-json", "", "write the seed scenario's whole-run results to this file")
	wholeMD := flag.String("seedwhole-md", "", "write the seed scenario's whole-run results as Markdown to this file")
	seedMD := flag.String("seed-md", "", "write the seed scenario's results as Markdown to this file")
	jsonOut := flag.String("json", "", "write the results to this file")
	mdOut := flag.String("md", "", "write the results as Markdown tables to this file")
	flag.BoolVar(&pyFirst, "py-first", false, "run PyTorch first in each pair of the training benchmarks")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "pass -cpuprofile PREFIX.<bench>.pprof to the Go side")
	flag.Parse()

	res := results{Threads: o.threads, Pairs: o.pairs, Start: time.Now().Format(time.RFC3339), LoadStart: loadavg()}
	var sr *seedResults
	var wr *seedWholeResults
	for _, name := range strings.Split(*only, ",") {
		var err error
		switch name {
		case "train50":
			err = trainStep(o, &res, "train50", "resnet50", 8, 224, 2)
		case "train50b16":
			err = trainStep(o, &res, "train50b16", "resnet50", 16, 224, 1)
		case "train50b32":
			err = trainStep(o, &res, "train50b32", "resnet50", 32, 224, 1)
		case "train18":
			err = train18(o, &res)
		case "frozen":
			err = frozen(o, &res)
		case "infer50":
			err = infer50(o, &res)
		case "seed":
			sr, err = seed(o)
		case "seedwhole":
			wr, err = seedWhole(o)
		default:
			err = fmt.Errorf("unknown benchmark %q", name)
		}
		if err != nil {
			log.Fatalf("runbench: %s: %v", name, err)
		}
	}
	res.LoadEnd = loadavg()
	res.End = time.Now().Format(time.RFC3339)
	if len(res.Series) > 0 {
		res.print(os.Stdout)
		writeOut(*mdOut, *jsonOut, res.markdown, res)
	}
	if sr != nil {
		sr.print(os.Stdout)
		writeOut(*seedMD, *seedJSON, sr.markdown, sr)
	}
	if wr != nil {
		wr.print(os.Stdout)
		writeOut(*wholeMD, *wholeJSON, wr.markdown, wr)
	}
}

// writeOut writes v as Markdown (with markdown) to mdPath and as JSON to
// jsonPath, each unless its path is empty.
func writeOut(mdPath, jsonPath string, markdown func(io.Writer), v any) {
	if mdPath != "" {
		var b strings.Builder
		markdown(&b)
		if err := os.WriteFile(mdPath, []byte(b.String()), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if jsonPath != "" {
		buf, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(jsonPath, append(buf, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// worker is one side's serving process.
type worker struct {
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	ready reply
}

type reply struct {
	Ready   bool    `json:"ready"`
	Seconds float64 `json:"seconds"`
	Units   int     `json:"units"`
	Done    int     `json:"done"`
	RSS     int64   `json:"rss"`
	Peak    int64   `json:"peak"`
	Threads int     `json:"threads"`
	Version string  `json:"version"`
	Error   string  `json:"error"`
}

// start starts a side: "go" or "py", with the workload's flags.
func start(o options, side, bench string, args ...string) (*worker, error) {
	args = append(args, "-threads", fmt.Sprint(o.threads))
	var cmd *exec.Cmd
	if side == "go" {
		if o.cpuprofile != "" {
			args = append(args, "-cpuprofile", o.cpuprofile+"."+bench+".pprof")
		}
		cmd = exec.Command(o.gowork, args...)
	} else {
		py := []string{o.script}
		for _, a := range args {
			if strings.HasPrefix(a, "-") {
				a = "-" + a // python's --flags
			}
			py = append(py, a)
		}
		cmd = exec.Command(o.python, py...)
	}
	cmd.Env = append(os.Environ(), fmt.Sprintf("OMP_NUM_THREADS=%d", o.threads))
	cmd.Stderr = os.Stderr
	w := &worker{name: side, cmd: cmd}
	var err error
	if w.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w.out = bufio.NewScanner(out)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if w.ready, err = w.read(); err != nil {
		return nil, err
	}
	if w.ready.Threads != o.threads {
		return nil, fmt.Errorf("%s side runs %d threads, want %d", side, w.ready.Threads, o.threads)
	}
	return w, nil
}

func (w *worker) read() (reply, error) {
	if !w.out.Scan() {
		if err := w.out.Err(); err != nil {
			return reply{}, err
		}
		return reply{}, fmt.Errorf("%s side: %w", w.name, io.ErrUnexpectedEOF)
	}
	var r reply
	if err := json.Unmarshal(w.out.Bytes(), &r); err != nil {
		return reply{}, fmt.Errorf("%s side: %q: %w", w.name, w.out.Text(), err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("%s side: %s", w.name, r.Error)
	}
	return r, nil
}

// do sends a command and waits for its reply.
func (w *worker) do(format string, args ...any) (reply, error) {
	if _, err := fmt.Fprintf(w.in, format+"\n", args...); err != nil {
		return reply{}, err
	}
	return w.read()
}

// run has the side run k units of variant and returns the reply.
func (w *worker) run(variant string, k int) (reply, error) { return w.do("run %s %d", variant, k) }

func (w *worker) stop() {
	fmt.Fprintln(w.in, "quit")
	w.in.Close()
	w.cmd.Wait()
}

// series is one side's measured blocks of one benchmark.
type series struct {
	Name    string    `json:"name"`
	Unit    string    `json:"unit"`    // what one sample measures
	Samples []float64 `json:"samples"` // seconds per unit, block by block
}

func (s *series) add(r reply) { s.Samples = append(s.Samples, r.Seconds/float64(r.Units)) }

func (s *series) median() float64 { return median(s.Samples) }

// comparison is a ratio of two series' medians.
type comparison struct {
	Bench  string  `json:"bench"`
	What   string  `json:"what"`
	Go     string  `json:"go"`
	Ref    string  `json:"ref"`
	GoMed  float64 `json:"go_median_s"`
	RefMed float64 `json:"ref_median_s"`
	Ratio  float64 `json:"ratio"` // Go time / reference time
	// PairRatio is the median of the ratios of the blocks run side by
	// side, which cancels drift in the machine's speed over the run.
	PairRatio float64 `json:"pair_ratio"`
	Target    string  `json:"target,omitempty"`
	Samples   int     `json:"samples"`
}

type memory struct {
	Bench   string  `json:"bench"`
	Side    string  `json:"side"`
	Peak    int64   `json:"peak_bytes"`
	RSS100  int64   `json:"rss_step100_bytes,omitempty"`
	RSS1000 int64   `json:"rss_step1000_bytes,omitempty"`
	Growth  float64 `json:"growth,omitempty"` // RSS1000/RSS100 - 1
	Batch   int     `json:"batch,omitempty"`
}

type results struct {
	Threads     int          `json:"threads"`
	Pairs       int          `json:"pairs"`
	Start       string       `json:"start"`
	End         string       `json:"end"`
	LoadStart   string       `json:"load_start"`
	LoadEnd     string       `json:"load_end"`
	Versions    []string     `json:"versions"`
	Series      []*series    `json:"series"`
	Comparisons []comparison `json:"comparisons"`
	Memory      []memory     `json:"memory"`
	Notes       []string     `json:"notes"`
}

func (res *results) compare(bench, what string, g, ref *series, target string) {
	n := min(len(g.Samples), len(ref.Samples))
	var pr []float64
	for i := range n {
		pr = append(pr, g.Samples[i]/ref.Samples[i])
	}
	res.Comparisons = append(res.Comparisons, comparison{Bench: bench, What: what, Go: g.Name, Ref: ref.Name,
		GoMed: g.median(), RefMed: ref.median(), Ratio: g.median() / ref.median(), PairRatio: median(pr),
		Target: target, Samples: n})
}

func (res *results) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	res.Notes = append(res.Notes, s)
	fmt.Println("note:", s)
}

func (res *results) version(ws ...*worker) {
	for _, w := range ws {
		v := w.name + ": " + w.ready.Version
		if !slices.Contains(res.Versions, v) {
			res.Versions = append(res.Versions, v)
		}
	}
}

// pair starts both sides of a benchmark.
func pair(o options, bench string, args ...string) (g, p *worker, err error) {
	if g, err = start(o, "go", bench, args...); err != nil {
		return nil, nil, err
	}
	if p, err = start(o, "py", bench, args...); err != nil {
		g.stop()
		return nil, nil, err
	}
	return g, p, nil
}

// pyFirst puts PyTorch first in each training pair (-py-first), to check
// that the order within a pair does not favour a side.
var pyFirst bool

// alternate runs pairs blocks of k units on each side in turn, Go first
// unless pyFirst, printing each, and adds them to gs and ps.
func alternate(label string, g, p *worker, pairs, k int, gs, ps *series) (last [2]reply, err error) {
	for i := range pairs {
		var rg, rp reply
		if pyFirst {
			if rp, err = p.run("-", k); err == nil {
				rg, err = g.run("-", k)
			}
		} else if rg, err = g.run("-", k); err == nil {
			rp, err = p.run("-", k)
		}
		if err != nil {
			return last, err
		}
		gs.add(rg)
		ps.add(rp)
		fmt.Printf("%s pair %d: Go %.4f s  PyTorch %.4f s  (per %s)\n", label, i+1,
			rg.Seconds/float64(k), rp.Seconds/float64(k), gs.Unit)
		last = [2]reply{rg, rp}
	}
	return last, nil
}

func warm(k int, ws ...*worker) error {
	for _, w := range ws {
		if _, err := w.run("-", k); err != nil {
			return err
		}
	}
	return nil
}

// trainStep measures a full training step.
func trainStep(o options, res *results, bench, arch string, batch, size, k int) error {
	if o.quick {
		k = 1
	}
	fmt.Printf("\n== %s: %s full training step, batch %d at %d×%d ==\n", bench, arch, batch, size, size)
	g, p, err := pair(o, bench, "-task", "train", "-arch", arch, "-batch", fmt.Sprint(batch), "-size", fmt.Sprint(size))
	if err != nil {
		return err
	}
	defer g.stop()
	defer p.stop()
	res.version(g, p)
	if err := warm(2, g, p); err != nil {
		return err
	}
	gs := &series{Name: "go-" + bench, Unit: "step"}
	ps := &series{Name: "py-" + bench, Unit: "step"}
	last, err := alternate(bench, g, p, o.pairs, k, gs, ps)
	if err != nil {
		return err
	}
	res.Series = append(res.Series, gs, ps)
	res.compare(bench, fmt.Sprintf("%s training step, batch %d at %d", arch, batch, size), gs, ps, "<= 1.00")
	res.Memory = append(res.Memory,
		memory{Bench: bench, Side: "go", Peak: last[0].Peak, Batch: batch},
		memory{Bench: bench, Side: "py", Peak: last[1].Peak, Batch: batch})
	return nil
}

// train18 measures ResNet18's training step, its peak RSS, then runs
// both sides to 1,000 steps and measures the RSS growth from step 100.
func train18(o options, res *results) error {
	const bench = "train18"
	batch, size, k := 32, 64, 10
	warmup := 10
	long, longPairs := 100, 9
	if o.quick {
		k, long, longPairs = 2, 10, 2
	}
	fmt.Printf("\n== %s: resnet18 full training step, batch %d at %d×%d ==\n", bench, batch, size, size)
	g, p, err := pair(o, bench, "-task", "train", "-arch", "resnet18", "-batch", fmt.Sprint(batch), "-size", fmt.Sprint(size))
	if err != nil {
		return err
	}
	defer func() { g.stop(); p.stop() }()
	res.version(g, p)
	// One step each, timed: do 1,000 steps fit in about ten minutes?
	rg, err := g.run("-", 1)
	if err != nil {
		return err
	}
	rp, err := p.run("-", 1)
	if err != nil {
		return err
	}
	if err := warm(warmup-1, g, p); err != nil {
		return err
	}
	gs := &series{Name: "go-" + bench, Unit: "step"}
	ps := &series{Name: "py-" + bench, Unit: "step"}
	pairs := (100 - warmup) / k
	if o.quick {
		pairs = o.pairs
	}
	last, err := alternate(bench, g, p, pairs, k, gs, ps)
	if err != nil {
		return err
	}
	res.Series = append(res.Series, gs, ps)
	res.compare(bench, fmt.Sprintf("resnet18 training step, batch %d at %d", batch, size), gs, ps, "<= 1.00")
	mg := memory{Bench: bench, Side: "go", Peak: last[0].Peak, Batch: batch}
	mp := memory{Bench: bench, Side: "py", Peak: last[1].Peak, Batch: batch}
	res.Memory = append(res.Memory, mg, mp)

	// RSS growth, step 100 → 1,000. The first step's time decides the
	// batch: over ten minutes a side at 32, the run uses fresh processes
	// at batch 8.
	step := max(gs.median(), ps.median())
	fmt.Printf("%s: first step Go %.3f s, PyTorch %.3f s; warm step %.3f s: 1,000 steps ≈ %.0f s a side\n",
		bench, rg.Seconds, rp.Seconds, step, 1000*step)
	rssBatch := batch
	if !o.quick && 1000*step > 600 {
		rssBatch = 8
		res.note("%s: 1,000 steps at batch 32 would take %.0f s a side (over ten minutes): the RSS growth run uses batch 8 in fresh processes",
			bench, 1000*step)
		g.stop()
		p.stop()
		if g, p, err = pair(o, bench+"-b8", "-task", "train", "-arch", "resnet18", "-batch", "8", "-size", fmt.Sprint(size)); err != nil {
			return err
		}
		if err := warm(warmup, g, p); err != nil {
			return err
		}
		if last, err = alternate(bench+"-b8", g, p, (100-warmup)/k, k, &series{Unit: "step"}, &series{Unit: "step"}); err != nil {
			return err
		}
	}
	at100 := last
	gl := &series{Name: "go-" + bench + "-long", Unit: "step"}
	pl := &series{Name: "py-" + bench + "-long", Unit: "step"}
	if last, err = alternate(bench+" to 1,000", g, p, longPairs, long, gl, pl); err != nil {
		return err
	}
	res.Series = append(res.Series, gl, pl)
	for i, w := range []*worker{g, p} {
		m := memory{Bench: bench + "-rss", Side: w.name, Peak: last[i].Peak, RSS100: at100[i].RSS,
			RSS1000: last[i].RSS, Batch: rssBatch}
		m.Growth = float64(m.RSS1000)/float64(m.RSS100) - 1
		fmt.Printf("%s %s: RSS at step %d %.1f MiB, at step %d %.1f MiB (%+.2f%%)\n", bench, w.name,
			at100[i].Done, mib(m.RSS100), last[i].Done, mib(m.RSS1000), 100*m.Growth)
		res.Memory = append(res.Memory, m)
	}
	return nil
}

// frozen measures the frozen-backbone epoch: each round runs PyTorch's
// plain loop, then finetune with caching off (contiguous, then
// channels-last, then the oneDNN-layout experiment), then finetune's
// caching (the features computed once, then epochs on them).
func frozen(o options, res *results) error {
	const bench = "frozen"
	n, size, batch, cachedEpochs := "512", "160", "32", 5
	if o.quick {
		n = "128"
	}
	fmt.Printf("\n== %s: frozen-backbone epoch, resnet50, %s images at %s×%s, batch %s ==\n", bench, n, size, size, batch)
	args := []string{"-task", "frozen", "-arch", "resnet50", "-n", n, "-size", size, "-batch", batch, "-classes", "10"}
	g, p, err := pair(o, bench, args...)
	if err != nil {
		return err
	}
	defer g.stop()
	defer p.stop()
	res.version(g, p)
	py := &series{Name: "py-frozen-plain", Unit: "epoch"}
	off := &series{Name: "go-frozen-off", Unit: "epoch"}
	offCL := &series{Name: "go-frozen-off-cl", Unit: "epoch"}
	offMK := &series{Name: "go-frozen-off-mkldnn", Unit: "epoch"}
	cache := &series{Name: "go-frozen-cache", Unit: "cache pass"}
	cached := &series{Name: "go-frozen-cached", Unit: "epoch"}
	for round := range o.pairs + 1 { // round 0 is the warm-up
		var rs [6]reply
		steps := []struct {
			w       *worker
			cmd     string
			variant string
			k       int
			s       *series
		}{
			{p, "run", "plain", 1, py},
			{g, "run", "off", 1, off},
			{g, "run", "off-cl", 1, offCL},
			{g, "run", "off-mkldnn", 1, offMK},
			{g, "cache", "", 1, cache},
			{g, "run", "cached", cachedEpochs, cached},
		}
		for i, s := range steps {
			var r reply
			if s.cmd == "cache" {
				r, err = s.w.do("cache")
				r.Units = 1
			} else {
				r, err = s.w.run(s.variant, s.k)
			}
			if err != nil {
				return err
			}
			rs[i] = r
			if round > 0 {
				s.s.add(r)
			}
		}
		label := fmt.Sprintf("round %d", round)
		if round == 0 {
			label = "warm-up"
		}
		fmt.Printf("%s %s: PyTorch %.3f s  Go off %.3f s  Go off-cl %.3f s  Go off-mkldnn %.3f s  Go cache pass %.3f s  Go cached %.4f s\n",
			bench, label, rs[0].Seconds, rs[1].Seconds, rs[2].Seconds, rs[3].Seconds, rs[4].Seconds, rs[5].Seconds/float64(cachedEpochs))
	}
	res.Series = append(res.Series, py, off, offCL, offMK, cache, cached)
	res.compare(bench, "caching off: folded backbone, contiguous", off, py, "<= 0.80")
	res.compare(bench, "caching off: folded backbone, channels-last (the trainer's format)", offCL, py, "<= 0.80")
	res.compare(bench, "cached features (finetune's default), epoch after the cache pass", cached, py, "<= 0.05 (20× faster)")
	// The cache is paid once a stage: with the default head stage of
	// five epochs, the mean epoch is (cache + 5 cached epochs)/5.
	amort := &series{Name: "go-frozen-cached-5-epochs-amortised", Unit: "epoch"}
	for i := range cache.Samples {
		amort.Samples = append(amort.Samples, (cache.Samples[i]+5*cached.Samples[i])/5)
	}
	res.Series = append(res.Series, amort)
	res.compare(bench, "cached, with the cache pass spread over the head stage's 5 epochs", amort, py, "")
	res.compare(bench, "caching off: channels-last against contiguous", offCL, off, "")
	res.compare(bench, "experiment: caching off, folded backbone in oneDNN's layout", offMK, py, "")
	res.compare(bench, "experiment: oneDNN's layout against channels-last", offMK, offCL, "")
	return nil
}

// infer50 measures eval-mode inference.
func infer50(o options, res *results) error {
	const bench = "infer50"
	k := 2
	if o.quick {
		k = 1
	}
	fmt.Printf("\n== %s: resnet50 eval-mode inference, batch 16 at 224×224 ==\n", bench)
	g, p, err := pair(o, bench, "-task", "infer", "-arch", "resnet50", "-batch", "16", "-size", "224")
	if err != nil {
		return err
	}
	defer g.stop()
	defer p.stop()
	res.version(g, p)
	type step struct {
		w       *worker
		variant string
		s       *series
	}
	steps := []step{
		{p, "plain", &series{Name: "py-infer50", Unit: "batch of 16"}},
		{g, "plain", &series{Name: "go-infer50", Unit: "batch of 16"}},
		{g, "folded", &series{Name: "go-infer50-folded", Unit: "batch of 16"}},
		{g, "folded-cl", &series{Name: "go-infer50-folded-cl", Unit: "batch of 16"}},
		{g, "mkldnn", &series{Name: "go-infer50-mkldnn", Unit: "batch of 16"}},
		{p, "cl", &series{Name: "py-infer50-cl", Unit: "batch of 16"}},
	}
	for round := range o.pairs + 1 {
		line := fmt.Sprintf("%s round %d:", bench, round)
		for _, s := range steps {
			kk := k
			if round == 0 {
				kk = 1
			}
			r, err := s.w.run(s.variant, kk)
			if err != nil {
				return err
			}
			if round > 0 {
				s.s.add(r)
			}
			line += fmt.Sprintf("  %s %.3f s", s.s.Name, r.Seconds/float64(kk))
		}
		fmt.Println(line)
	}
	for _, s := range steps {
		res.Series = append(res.Series, s.s)
	}
	res.compare(bench, "the model as built, contiguous", steps[1].s, steps[0].s, "")
	res.compare(bench, "BatchNorm folded (models.Fuse), contiguous", steps[2].s, steps[0].s, "")
	res.compare(bench, "BatchNorm folded (models.Fuse), channels-last", steps[3].s, steps[0].s, "")
	res.compare(bench, "experiment: BatchNorm folded, oneDNN's layout (bench.MkldnnBackbone)", steps[4].s, steps[0].s, "")
	res.compare(bench, "PyTorch channels-last (a PyTorch-only figure)", steps[5].s, steps[0].s, "")
	return nil
}

// trainBenches are the benchmarks whose peak RSS has a target.
var trainBenches = []string{"train50", "train50b16", "train50b32", "train18"}

func (res *results) print(w io.Writer) {
	fmt.Fprintf(w, "\n== summary: %d threads, %d pairs; load average %s at the start, %s at the end ==\n",
		res.Threads, res.Pairs, res.LoadStart, res.LoadEnd)
	fmt.Fprintf(w, "libtorch: %s\n", strings.Join(res.Versions, "; "))
	fmt.Fprintf(w, "%-10s %-64s %-20s %11s %11s %22s %22s  %s\n", "bench", "measured", "reference",
		"median", "ref median", "ratio", "pairwise", "target")
	for _, c := range res.Comparisons {
		fmt.Fprintf(w, "%-10s %-64s %-20s %10.4fs %10.4fs %22s %22s  %s\n", c.Bench, c.What, refName(c.Ref),
			c.GoMed, c.RefMed, ratio(c.Ratio), ratio(c.PairRatio), c.Target)
	}
	fmt.Fprintln(w, "ratio: median / reference median; pairwise: median of the ratios of the blocks run side by side")
	fmt.Fprintf(w, "\n%-12s %-4s %10s %12s %12s %9s\n", "memory", "side", "peak MiB", "RSS@100 MiB", "RSS@1000 MiB", "growth")
	peaks := map[string]int64{}
	for _, m := range res.Memory {
		fmt.Fprintf(w, "%-12s %-4s %10.1f", m.Bench, m.Side, mib(m.Peak))
		if m.RSS100 > 0 {
			fmt.Fprintf(w, " %12.1f %12.1f %+8.2f%%", mib(m.RSS100), mib(m.RSS1000), 100*m.Growth)
		}
		fmt.Fprintln(w)
		peaks[m.Bench+"/"+m.Side] = m.Peak
	}
	for _, b := range trainBenches {
		if gp, pp := peaks[b+"/go"], peaks[b+"/py"]; gp > 0 && pp > 0 {
			fmt.Fprintf(w, "peak RSS %s: Go/PyTorch %.3f (target <= 1.10)\n", b, float64(gp)/float64(pp))
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// markdown writes the summary as Markdown tables.
func (res *results) markdown(w io.Writer) {
	fmt.Fprintf(w, "| benchmark | measured | series | reference | median | reference median | ratio | pairwise ratio | target | pairs |\n")
	fmt.Fprintf(w, "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: |\n")
	for _, c := range res.Comparisons {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | **%s** | %s | %s | %d |\n", c.Bench, c.What, refName(c.Go), refName(c.Ref),
			secs(c.GoMed), secs(c.RefMed), ratio(c.Ratio), ratio(c.PairRatio), strings.ReplaceAll(c.Target, "<=", "≤"), c.Samples)
	}
	fmt.Fprintf(w, "\n| memory | side | batch | peak RSS (VmHWM) | RSS at step 100 | RSS at step 1,000 | growth |\n")
	fmt.Fprintf(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	peaks := map[string]int64{}
	for _, m := range res.Memory {
		side := map[string]string{"go": "Go", "py": "PyTorch"}[m.Side]
		if m.RSS100 > 0 {
			fmt.Fprintf(w, "| %s | %s | %d | %.0f MiB | %.1f MiB | %.1f MiB | %+.2f%% |\n", m.Bench, side, m.Batch,
				mib(m.Peak), mib(m.RSS100), mib(m.RSS1000), 100*m.Growth)
		} else {
			fmt.Fprintf(w, "| %s | %s | %d | %.0f MiB | | | |\n", m.Bench, side, m.Batch, mib(m.Peak))
		}
		peaks[m.Bench+"/"+m.Side] = m.Peak
	}
	fmt.Fprintln(w)
	for _, b := range trainBenches {
		if gp, pp := peaks[b+"/go"], peaks[b+"/py"]; gp > 0 && pp > 0 {
			fmt.Fprintf(w, "- peak RSS %s: Go/PyTorch **%.3f** (target ≤ 1.10)\n", b, float64(gp)/float64(pp))
		}
	}
	fmt.Fprint(w, "\nEvery sample (seconds per unit, in run order):\n\n")
	for _, s := range res.Series {
		var v []string
		for _, x := range s.Samples {
			v = append(v, fmt.Sprintf("%.4g", x))
		}
		fmt.Fprintf(w, "- %s (per %s): %s\n", s.Name, s.Unit, strings.Join(v, ", "))
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
}

// refName names a reference series: PyTorch, or a Go variant.
func refName(series string) string {
	if strings.HasPrefix(series, "py-") {
		return "PyTorch " + strings.TrimPrefix(series, "py-")
	}
	return "Go " + strings.TrimPrefix(series, "go-")
}

// ratio formats a ratio, with the speed-up when it is large.
func ratio(r float64) string {
	if r < 0.1 {
		return fmt.Sprintf("%.5f (%.0f× faster)", r, 1/r)
	}
	return fmt.Sprintf("%.3f", r)
}

func secs(s float64) string {
	if s < 0.1 {
		return fmt.Sprintf("%.2f ms", 1000*s)
	}
	return fmt.Sprintf("%.3f s", s)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func loadavg() string {
	buf, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(buf))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
