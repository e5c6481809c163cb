// Command loader compares the throughput of vision/data's BatchLoader with
// torchvision's DataLoader on the same folder of JPEGs and the same
// training transforms: RandomResizedCrop(224), RandomHorizontalFlip,
// ToTensor and ImageNet normalisation, shuffled batches of 32.
//
// Run it from the repository root:
//
//	go run ./bench/loader -workers 2 -rounds 5
//
// It first has bench/loader_torchvision.py (run with /usr/bin/python3,
// Debian's python with python3-torchvision) write the dataset, 2,000
// Fashion-MNIST images as 256×256 JPEGs in ten class folders, unless the
// folder already holds them. Then, each round, it starts a fresh Go loader
// and a fresh torchvision DataLoader (as many worker processes as Go
// workers, kept alive across epochs, in a "serve" process) and runs their
// epochs in turn, Go then torchvision, so that both see the same load from
// whatever else runs on the machine. It prints images per second for both
// and their ratio, for the first epoch, when the Go loader decodes and
// fills its cache, and for the later ones together, and the CPU time each
// spends per image (all threads and processes); the summary takes the
// medians over the rounds.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/vision/data"
)

// config is what the command line sets.
type config struct {
	dir, python, script string
	workers, batch      int
	epochs              int
}

func main() {
	var c config
	flag.StringVar(&c.dir, "dir", os.TempDir()+"/finetune-loader-bench", "dataset folder, written if missing")
	count := flag.Int("count", 2000, "images in the dataset")
	flag.IntVar(&c.workers, "workers", 2, "Go worker goroutines and torchvision worker processes")
	flag.IntVar(&c.batch, "batch", 32, "batch size")
	flag.IntVar(&c.epochs, "epochs", 4, "epochs per round, at least 2")
	flag.StringVar(&c.python, "python", "/usr/bin/python3", "python with torch and torchvision")
	flag.StringVar(&c.script, "script", "bench/loader_torchvision.py", "the torchvision side")
	rounds := flag.Int("rounds", 3, "rounds, each with a fresh loader of each kind")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the Go loader's epochs to this file")
	flag.Parse()
	if c.epochs < 2 || *rounds < 1 {
		log.Fatal("loader: want -epochs >= 2 and -rounds >= 1")
	}

	gen := exec.Command(c.python, c.script, "make", c.dir, "--count", fmt.Sprint(*count))
	gen.Stdout, gen.Stderr = os.Stdout, os.Stderr
	if err := gen.Run(); err != nil {
		log.Fatalf("loader: writing the dataset: %v", err)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s; libtorch %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), torch.Version())
	fmt.Printf("dataset: %s, %d JPEGs; batch %d, %d workers, %d epochs a round\n\n",
		c.dir, *count, c.batch, c.workers, c.epochs)
	var rates, cpus [4][]float64 // Go first, Go later, torchvision first, torchvision later
	for r := range *rounds {
		g, t, err := round(c)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("round %d  %-12s %s\n", r+1, "Go:", g)
		fmt.Printf("         %-12s %s\n", "torchvision:", t)
		for k, x := range []epoch{g.first(), g.later(), t.first(), t.later()} {
			rates[k] = append(rates[k], x.perSecond())
			cpus[k] = append(cpus[k], x.cpuMillis())
		}
	}
	fmt.Printf("\nmedians of %d rounds\n", *rounds)
	fmt.Printf("%-14s %10s %12s %6s   %14s %12s %6s\n", "", "Go img/s", "torchvision", "ratio",
		"Go CPU ms/img", "torchvision", "ratio")
	for k, name := range []string{"first epoch", "later epochs"} {
		gr, tr := median(rates[k]), median(rates[k+2])
		gc, tc := median(cpus[k]), median(cpus[k+2])
		fmt.Printf("%-14s %10.0f %12.0f %5.2fx   %14.2f %12.2f %5.2fx\n", name, gr, tr, gr/tr, gc, tc, tc/gc)
	}
}

// round runs c.epochs epochs of a new Go loader and a new torchvision
// loader, in turn, and returns their measures.
func round(c config) (goEpochs, tvEpochs epochs, err error) {
	ds, err := data.ImageFolder(c.dir)
	if err != nil {
		return nil, nil, err
	}
	pipe, err := data.TrainPipeline(data.AugmentConfig{Size: 224, HFlip: 0.5})
	if err != nil {
		return nil, nil, err
	}
	bl, err := data.NewBatchLoader(&data.Loader{Dataset: ds, Pipeline: pipe}, nil,
		data.BatchOptions{BatchSize: c.batch, Workers: c.workers, Shuffle: true, Seed: 1})
	if err != nil {
		return nil, nil, err
	}
	defer bl.Close()

	tv := exec.Command(c.python, c.script, "serve", c.dir,
		"--workers", fmt.Sprint(c.workers), "--batch", fmt.Sprint(c.batch))
	tv.Stderr = os.Stderr
	in, err := tv.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := tv.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := tv.Start(); err != nil {
		return nil, nil, fmt.Errorf("torchvision: %w", err)
	}
	defer tv.Wait()
	defer in.Close()
	lines := bufio.NewScanner(out)

	for e := range c.epochs {
		g, err := goEpoch(bl, e)
		if err != nil {
			return nil, nil, err
		}
		t, err := tvEpoch(in, lines)
		if err != nil {
			return nil, nil, fmt.Errorf("torchvision: %w", err)
		}
		goEpochs, tvEpochs = append(goEpochs, g), append(tvEpochs, t)
	}
	return goEpochs, tvEpochs, nil
}

// goEpoch runs and measures epoch e of bl.
func goEpoch(bl *data.BatchLoader, e int) (epoch, error) {
	var x epoch
	start, cpu := time.Now(), cpuSeconds()
	for b, err := range bl.Epoch(context.Background(), e) {
		if err != nil {
			return epoch{}, err
		}
		x.Images += len(b.Indices)
		b.Free()
	}
	x.Seconds = time.Since(start).Seconds()
	x.CPUSeconds = cpuSeconds() - cpu
	return x, nil
}

// tvEpoch has the serving torchvision process run an epoch and reads its
// measure.
func tvEpoch(in io.Writer, lines *bufio.Scanner) (epoch, error) {
	if _, err := io.WriteString(in, "epoch\n"); err != nil {
		return epoch{}, err
	}
	if !lines.Scan() {
		if err := lines.Err(); err != nil {
			return epoch{}, err
		}
		return epoch{}, io.ErrUnexpectedEOF
	}
	var x epoch
	if err := json.Unmarshal(lines.Bytes(), &x); err != nil {
		return epoch{}, fmt.Errorf("output %q: %w", lines.Text(), err)
	}
	return x, nil
}

// cpuSeconds returns the user and system CPU time of the process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// epoch is the measure of one epoch.
type epoch struct {
	Images     int     `json:"images"`
	Seconds    float64 `json:"seconds"`     // wall clock
	CPUSeconds float64 `json:"cpu_seconds"` // user and system, all threads and processes
}

func (x epoch) perSecond() float64 { return float64(x.Images) / x.Seconds }

// cpuMillis returns the CPU time per image in milliseconds.
func (x epoch) cpuMillis() float64 { return 1000 * x.CPUSeconds / float64(x.Images) }

// epochs holds the measures of a round's epochs.
type epochs []epoch

func (e epochs) first() epoch { return e[0] }

// later returns the measures of all epochs but the first, added up.
func (e epochs) later() epoch {
	var t epoch
	for _, x := range e[1:] {
		t.Images += x.Images
		t.Seconds += x.Seconds
		t.CPUSeconds += x.CPUSeconds
	}
	return t
}

func (e epochs) String() string {
	var b bytes.Buffer
	for i, x := range e {
		fmt.Fprintf(&b, "  epoch %d %5.0f/s %4.2f ms CPU", i, x.perSecond(), x.cpuMillis())
	}
	return b.String()
}

// median returns the median of v, which it sorts.
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// cpuModel returns the processor's name from /proc/cpuinfo, if it can.
func cpuModel() string {
	buf, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range bytes.Split(buf, []byte("\n")) {
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.Equal(bytes.TrimSpace(k), []byte("model name")) {
			return string(bytes.TrimSpace(v))
		}
	}
	return "unknown CPU"
}
