package bench

import (
	"flag"
	"runtime"
	"testing"

	"github.com/finetune-go/finetune/torch"
)

// The Go side of the comparisons, as go test benchmarks:
//
//	go test -run '^$' -bench . -benchtime 5x ./bench
//
// bench/run.sh runs the same workloads against PyTorch, side by side, and
// BENCHMARKS.md records the ratios.

var threads = flag.Int("bench.threads", 2, "libtorch intra-op threads")

// pin keeps the benchmark on one OS thread, whose OpenMP team libtorch
// reuses, with the thread count set.
func pin(b *testing.B) {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	torch.SetNumThreads(*threads)
	torch.ManualSeed(0)
}

func benchTrain(b *testing.B, arch string, batch, size int) {
	pin(b)
	t, err := NewTrain(arch, batch, size, 1000)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := t.Step(); err != nil { // the momentum buffers, the allocator's caches
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := t.Step(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkResNet50TrainStep is a full training step (forward, backward,
// SGD with momentum) of ResNet50 on 8 images of 224×224.
func BenchmarkResNet50TrainStep(b *testing.B) { benchTrain(b, "resnet50", 8, 224) }

// BenchmarkResNet18TrainStep is a full training step of ResNet18 on 32
// images of 64×64, where the cost per operator shows.
func BenchmarkResNet18TrainStep(b *testing.B) { benchTrain(b, "resnet18", 32, 64) }

// BenchmarkResNet50Inference is eval-mode inference without autograd on 16
// images of 224×224: the model as it is, and with its BatchNorm layers
// folded into the convolutions in each memory format.
func BenchmarkResNet50Inference(b *testing.B) {
	for _, v := range []struct {
		name   string
		fold   bool
		format torch.MemoryFormat
	}{{"plain", false, 0}, {"folded", true, torch.ContiguousFormat}, {"folded-channels-last", true, torch.ChannelsLast}} {
		b.Run(v.name, func(b *testing.B) {
			pin(b)
			in, err := NewInfer("resnet50", 16, 224, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if v.fold {
				if err := in.Fold(v.format); err != nil {
					b.Fatal(err)
				}
				defer in.Folded.Free()
			}
			if err := in.Step(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := in.Step(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(16*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkFrozenEpoch is an epoch of training a linear head on a frozen
// ResNet50 over 512 images of 160×160: on cached features (finetune's
// default), and with caching off, the folded backbone running on every
// batch in channels-last (the trainer's format) and contiguous.
func BenchmarkFrozenEpoch(b *testing.B) {
	for _, v := range []struct {
		name   string
		cached bool
		format torch.MemoryFormat
	}{{"cached", true, torch.ChannelsLast}, {"off-channels-last", false, torch.ChannelsLast}, {"off-contiguous", false, torch.ContiguousFormat}} {
		b.Run(v.name, func(b *testing.B) {
			pin(b)
			f, err := NewFrozen("resnet50", 512, 160, 32, 10)
			if err != nil {
				b.Fatal(err)
			}
			if err := f.UseFolded(v.format); err != nil {
				b.Fatal(err)
			}
			epoch := f.EpochOff
			if v.cached {
				if err := f.Cache(); err != nil {
					b.Fatal(err)
				}
				epoch = f.EpochCached
			}
			for b.Loop() {
				if err := epoch(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
