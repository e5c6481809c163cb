// Command gowork serves one of package bench's workloads to the benchmark
// runner (bench/cmd/runbench), as bench/py/work.py serves PyTorch's: it
// builds the workload, prints a JSON line {"ready": true, ...}, then for
// each line it reads on stdin
//
//	run VARIANT K   runs K units (training steps, inference batches or
//	                epochs) and prints {"seconds": s, "units": K,
//	                "done": all units so far, "rss": VmRSS, "peak": VmHWM}
//	cache           (frozen) computes the cached features and prints
//	                {"seconds": s, ...}
//	quit            exits
//
// Variants: train has "-"; infer has "plain", "folded" (BatchNorm folded,
// contiguous), "folded-cl" (folded, channels-last) and "mkldnn" (folded,
// in oneDNN's layout: bench.MkldnnBackbone); frozen has "cached"
// (finetune's default: head epochs on the cached features), "off"
// (train.cache_features: off, the folded backbone in the contiguous
// format), "off-cl" (the same in channels-last) and "off-mkldnn" (the
// same with bench.MkldnnBackbone).
//
// The workload runs on the main goroutine, locked to the main OS thread
// for the process's life, with libtorch's intra-op threads set by
// -threads.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/finetune-go/finetune/bench"
	"github.com/finetune-go/finetune/torch"
)

func init() { runtime.LockOSThread() }

type reply struct {
	Ready   bool    `json:"ready,omitempty"`
	Seconds float64 `json:"seconds"`
	Units   int     `json:"units"`
	Done    int     `json:"done"`
	RSS     int64   `json:"rss"`
	Peak    int64   `json:"peak"`
	Threads int     `json:"threads,omitempty"`
	Version string  `json:"version,omitempty"`
	Error   string  `json:"error,omitempty"`
}

func main() {
	task := flag.String("task", "train", "train, infer or frozen")
	arch := flag.String("arch", "resnet18", "architecture")
	batch := flag.Int("batch", 32, "batch size")
	size := flag.Int("size", 64, "image side in pixels")
	classes := flag.Int64("classes", 1000, "classes")
	n := flag.Int("n", 512, "images (frozen)")
	threads := flag.Int("threads", 2, "libtorch intra-op threads")
	seed := flag.Uint64("seed", 0, "torch.ManualSeed")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs to this file")
	flag.Parse()
	torch.SetNumThreads(*threads)
	torch.ManualSeed(*seed)

	var (
		// prepare readies a variant (a fold in another memory format),
		// untimed; run runs one unit of it.
		prepare = func(string) error { return nil }
		run     func(variant string) error
		cache   func() error
	)
	switch *task {
	case "train":
		t, err := bench.NewTrain(*arch, *batch, *size, *classes)
		if err != nil {
			log.Fatal(err)
		}
		run = func(string) error { _, err := t.Step(); return err }
	case "infer":
		in, err := bench.NewInfer(*arch, *batch, *size, *classes)
		if err != nil {
			log.Fatal(err)
		}
		current := "plain"
		prepare = func(v string) error {
			if v == current {
				return nil
			}
			if in.Folded != nil {
				in.Folded.Free()
				in.Folded = nil
			}
			if in.Mkldnn != nil {
				in.Mkldnn.Free()
				in.Mkldnn = nil
			}
			switch v {
			case "mkldnn":
				in.Mkldnn, err = bench.FoldMkldnn(in.Model)
			case "folded":
				err = in.Fold(torch.ContiguousFormat)
			case "folded-cl":
				err = in.Fold(torch.ChannelsLast)
			case "plain":
			default:
				err = fmt.Errorf("infer: unknown variant %q", v)
			}
			if err == nil {
				current = v
			}
			return err
		}
		run = func(string) error { return in.Step() }
	case "frozen":
		f, err := bench.NewFrozen(*arch, *n, *size, *batch, *classes)
		if err != nil {
			log.Fatal(err)
		}
		format := torch.MemoryFormat(-1)
		use := func(m torch.MemoryFormat) error {
			if m == format {
				return nil
			}
			format = m
			return f.UseFolded(m)
		}
		// The cache pass is what a stage pays once: the fold and the
		// features of every image, in the memory format the trainer folds
		// for (finetune/features.go: channels-last).
		cache = func() error {
			format = -1
			if err := use(torch.ChannelsLast); err != nil {
				return err
			}
			return f.Cache()
		}
		prepare = func(v string) error {
			switch v {
			case "cached":
				if f.Feats == nil {
					return fmt.Errorf("frozen: run cache first")
				}
				return nil
			case "off":
				return use(torch.ContiguousFormat)
			case "off-cl":
				return use(torch.ChannelsLast)
			case "off-mkldnn":
				return f.UseMkldnn()
			}
			return fmt.Errorf("frozen: unknown variant %q", v)
		}
		run = func(v string) error {
			switch v {
			case "cached":
				return f.EpochCached()
			case "off-mkldnn":
				return f.EpochMkldnn()
			}
			return f.EpochOff()
		}
	default:
		log.Fatalf("gowork: unknown task %q", *task)
	}

	out := json.NewEncoder(os.Stdout)
	say := func(r reply) {
		rss, err := bench.ReadRSS()
		if err != nil {
			log.Fatal(err)
		}
		r.RSS, r.Peak = rss.Now, rss.Peak
		if err := out.Encode(r); err != nil {
			log.Fatal(err)
		}
	}
	say(reply{Ready: true, Threads: torch.NumThreads(), Version: torch.Version()})
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	done := 0
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		if len(fields) == 0 {
			continue
		}
		var r reply
		start := time.Now()
		var err error
		switch fields[0] {
		case "quit":
			return
		case "cache":
			if cache == nil {
				err = fmt.Errorf("task %s has no cache", *task)
			} else {
				err = cache()
			}
		case "run":
			var k int
			if len(fields) != 3 {
				err = fmt.Errorf("want: run VARIANT K")
			} else if _, err = fmt.Sscan(fields[2], &k); err == nil {
				if err = prepare(fields[1]); err != nil {
					break
				}
				start = time.Now()
				for range k {
					if err = run(fields[1]); err != nil {
						break
					}
				}
				r.Units = k
				done += k
			}
		default:
			err = fmt.Errorf("unknown command %q", fields[0])
		}
		r.Seconds, r.Done = time.Since(start).Seconds(), done
		if err != nil {
			r.Error = err.Error()
		}
		say(r)
	}
}
