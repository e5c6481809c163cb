package data

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finetune-go/finetune/torch"
	"github.com/stretchr/testify/require"
)

// testSet is a dataset written to a temporary folder.
type testSet struct {
	root   string
	ds     *Dataset
	colour map[string][3]uint8 // solid images: path -> colour
}

// writeSolid writes a folder with counts[c] solid-colour PNGs of 40×30 in
// class folder c; each image's colour identifies it.
func writeSolid(t *testing.T, counts ...int) testSet {
	t.Helper()
	s := testSet{root: t.TempDir(), colour: map[string][3]uint8{}}
	for c, n := range counts {
		dir := filepath.Join(s.root, fmt.Sprintf("class%d", c))
		require.NoError(t, os.Mkdir(dir, 0o755))
		for k := range n {
			col := [3]uint8{uint8(10 + 40*c), uint8(10 + 3*k), 128}
			img := image.NewNRGBA(image.Rect(0, 0, 40, 30))
			for i := 0; i < len(img.Pix); i += 4 {
				copy(img.Pix[i:], []uint8{col[0], col[1], col[2], 0xff})
			}
			path := filepath.Join(dir, fmt.Sprintf("img%03d.png", k))
			writePNG(t, path, img)
			s.colour[path] = col
		}
	}
	s.load(t)
	return s
}

// writeTextured writes counts[c] textured JPEGs of w×h in class folder c,
// each different, so that random crops and flips change their pixels.
func writeTextured(t *testing.T, w, h int, counts ...int) testSet {
	t.Helper()
	s := testSet{root: t.TempDir()}
	seed := uint64(0)
	for c, n := range counts {
		dir := filepath.Join(s.root, fmt.Sprintf("class%d", c))
		require.NoError(t, os.Mkdir(dir, 0o755))
		for k := range n {
			seed++
			writeJPEG(t, filepath.Join(dir, fmt.Sprintf("img%03d.jpg", k)), textured(w, h, seed))
		}
	}
	s.load(t)
	return s
}

func (s *testSet) load(t *testing.T) {
	t.Helper()
	ds, err := ImageFolder(s.root)
	require.NoError(t, err)
	s.ds = ds
}

// textured returns a gradient with noise drawn from seed.
func textured(w, h int, seed uint64) *image.NRGBA {
	r := rand.New(rand.NewPCG(seed, 1))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(255 * x / w), G: uint8(255 * y / h), B: uint8(r.IntN(256)), A: 0xff,
			})
		}
	}
	return img
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, png.Encode(f, img))
	require.NoError(t, f.Close())
}

func writeJPEG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, jpeg.Encode(f, img, &jpeg.Options{Quality: 90}))
	require.NoError(t, f.Close())
}

// batchData is a batch copied out of its tensors.
type batchData struct {
	shape   []int64
	images  []float32
	labels  []int64
	indices []int
}

// epoch runs one epoch of bl and returns its batches, freed.
func epoch(t *testing.T, bl *BatchLoader, e int) []batchData {
	t.Helper()
	var out []batchData
	for b, err := range bl.Epoch(context.Background(), e) {
		require.NoError(t, err)
		imgs, err := b.Images.Float32s()
		require.NoError(t, err)
		labels, err := b.Labels.Int64s()
		require.NoError(t, err)
		out = append(out, batchData{shape: b.Images.Shape(), images: imgs, labels: labels, indices: b.Indices})
		b.Free()
	}
	return out
}

// newBatchLoader builds a loader that logs through t.
func newBatchLoader(t *testing.T, l *Loader, indices []int, opts BatchOptions) *BatchLoader {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	bl, err := NewBatchLoader(l, indices, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, bl.Close()) })
	return bl
}

func trainPipeline(t *testing.T, size int) *Pipeline {
	t.Helper()
	p, err := TrainPipeline(AugmentConfig{Size: size, HFlip: 0.5, ColorJitter: ColorJitter{Brightness: 0.2}})
	require.NoError(t, err)
	return p
}

func evalPipeline(t *testing.T, resize, crop int) *Pipeline {
	t.Helper()
	p, err := EvalPipeline(resize, crop, ImageNet)
	require.NoError(t, err)
	return p
}

func TestBatchLoaderSameSeedSameBatches(t *testing.T) {
	s := writeTextured(t, 64, 48, 9, 8)
	l := &Loader{Dataset: s.ds, Pipeline: trainPipeline(t, 24)}
	run := func(workers, prefetch int, seed uint64, cache int64) [][]batchData {
		bl := newBatchLoader(t, l, nil, BatchOptions{
			BatchSize: 4, Workers: workers, Prefetch: prefetch, Shuffle: true, Seed: seed, CacheBytes: cache,
		})
		return [][]batchData{epoch(t, bl, 0), epoch(t, bl, 1)}
	}
	want := run(1, 1, 7, 0)
	tests := []struct {
		name              string
		workers, prefetch int
		cache             int64
	}{
		{"again", 1, 1, 0},
		{"2 workers", 2, 0, 0},
		{"4 workers, prefetch 1", 4, 1, 0},
		{"3 workers, no cache", 3, 2, -1},
		{"tiny cache", 2, 3, 20000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, want, run(tt.workers, tt.prefetch, 7, tt.cache))
		})
	}
	t.Run("Order and Bounds describe the batches", func(t *testing.T) {
		bl := newBatchLoader(t, l, nil, BatchOptions{BatchSize: 4, Shuffle: true, Seed: 7})
		for e, batches := range want {
			order := bl.Order(e)
			for k, b := range bl.Bounds() {
				var indices []int
				for _, pos := range order[b[0]:b[1]] {
					indices = append(indices, pos) // all samples: positions are dataset indices
				}
				require.Equal(t, indices, batches[k].indices)
			}
		}
	})
	t.Run("epochs differ", func(t *testing.T) {
		require.NotEqual(t, want[0][0].indices, want[1][0].indices)
	})
	t.Run("other seed differs", func(t *testing.T) {
		other := run(2, 0, 8, 0)
		require.NotEqual(t, want[0][0].indices, other[0][0].indices)
	})
	t.Run("same sample, other epoch, other augmentation", func(t *testing.T) {
		// The same sample (first batch, first sample without shuffling)
		// gets new random parameters every epoch.
		bl := newBatchLoader(t, l, nil, BatchOptions{BatchSize: 4, Seed: 7})
		e0, e1 := epoch(t, bl, 0), epoch(t, bl, 1)
		require.Equal(t, e0[0].indices, e1[0].indices)
		require.NotEqual(t, e0[0].images, e1[0].images)
	})
}

func TestBatchBounds(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		opts      BatchOptions
		wantSizes []int
	}{
		{"exact", 9, BatchOptions{BatchSize: 3}, []int{3, 3, 3}},
		{"partial last", 11, BatchOptions{BatchSize: 3}, []int{3, 3, 3, 2}},
		{"drop last", 11, BatchOptions{BatchSize: 3, DropLast: true}, []int{3, 3, 3}},
		{"singleton merged", 10, BatchOptions{BatchSize: 3}, []int{3, 3, 4}},
		{"singleton dropped", 10, BatchOptions{BatchSize: 3, Singleton: DropSingleton}, []int{3, 3, 3}},
		{"singleton kept", 10, BatchOptions{BatchSize: 3, Singleton: KeepSingleton}, []int{3, 3, 3, 1}},
		{"singleton, drop last", 10, BatchOptions{BatchSize: 3, DropLast: true}, []int{3, 3, 3}},
		{"one sample", 1, BatchOptions{BatchSize: 4}, []int{1}},
		{"one sample, dropped", 1, BatchOptions{BatchSize: 4, Singleton: DropSingleton}, nil},
		{"batch size 1", 3, BatchOptions{BatchSize: 1}, []int{1, 1, 1}},
		{"fewer than a batch", 3, BatchOptions{BatchSize: 8}, []int{3}},
		{"fewer than a batch, drop last", 3, BatchOptions{BatchSize: 8, DropLast: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sizes []int
			next := 0
			for _, b := range batchBounds(tt.n, tt.opts) {
				require.Equal(t, next, b[0], "batches must be contiguous")
				sizes = append(sizes, b[1]-b[0])
				next = b[1]
			}
			require.Equal(t, tt.wantSizes, sizes)
		})
	}
}

// panicStep is a random step that panics.
type panicStep struct{}

func (panicStep) Apply(*image.NRGBA, *rand.Rand) *image.NRGBA { panic("boom") }
func (panicStep) Random() bool                                { return true }

// TestBatchLoaderEpochs checks real epochs: batch sizes, every sample
// exactly once, and each image with its own label.
func TestBatchLoaderEpochs(t *testing.T) {
	s := writeSolid(t, 6, 4) // 10 samples
	lut := normLUT(ImageNet)
	tests := []struct {
		name      string
		indices   []int
		opts      BatchOptions
		wantSizes []int
	}{
		{"in order", nil, BatchOptions{BatchSize: 4}, []int{4, 4, 2}},
		{"shuffled, singleton merged", nil, BatchOptions{BatchSize: 3, Shuffle: true, Seed: 3}, []int{3, 3, 4}},
		{"drop last", nil, BatchOptions{BatchSize: 4, Shuffle: true, DropLast: true}, []int{4, 4}},
		{"subset, singleton kept", []int{9, 0, 5, 2}, BatchOptions{BatchSize: 3, Singleton: KeepSingleton}, []int{3, 1}},
		{"repeated index", []int{1, 1, 7, 7, 7}, BatchOptions{BatchSize: 5, Workers: 3}, []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bl := newBatchLoader(t, &Loader{Dataset: s.ds, Pipeline: evalPipeline(t, 32, 24)}, tt.indices, tt.opts)
			require.Equal(t, len(tt.wantSizes), bl.Len())
			indices := tt.indices
			if indices == nil {
				indices = make([]int, 10)
				for i := range indices {
					indices[i] = i
				}
			}
			for e := range 2 {
				var sizes, seen []int
				for _, b := range epoch(t, bl, e) {
					n := len(b.indices)
					sizes = append(sizes, n)
					seen = append(seen, b.indices...)
					require.Equal(t, []int64{int64(n), 3, 24, 24}, b.shape)
					for j, i := range b.indices {
						sample := s.ds.Samples[i]
						require.Equal(t, int64(sample.Label), b.labels[j], "label of %s", sample.Path)
						col := s.colour[sample.Path]
						plane := 24 * 24
						img := b.images[j*3*plane : (j+1)*3*plane]
						for c := range 3 {
							require.Equal(t, lut[c][col[c]], img[c*plane+plane/2], "channel %d of %s", c, sample.Path)
						}
					}
				}
				require.Equal(t, tt.wantSizes, sizes)
				if !tt.opts.DropLast {
					require.ElementsMatch(t, indices, seen, "every sample once")
				} else {
					require.Subset(t, indices, seen)
					require.Len(t, seen, 8)
				}
			}
		})
	}
}

// TestBatchLoaderMatchesLoader checks batch values against the
// per-sample Loader, with and without the cache, for an evaluation and a
// training pipeline.
func TestBatchLoaderMatchesLoader(t *testing.T) {
	s := writeTextured(t, 90, 70, 3, 3)
	eval := evalPipeline(t, 64, 56)
	perSample := func(t *testing.T, l *Loader, i int) []float32 {
		img, label, err := l.Load(i, nil)
		require.NoError(t, err)
		require.Equal(t, s.ds.Samples[i].Label, label)
		return img.Data
	}
	for _, cache := range []int64{0, -1} {
		t.Run(fmt.Sprintf("cache %d", cache), func(t *testing.T) {
			l := &Loader{Dataset: s.ds, Pipeline: eval}
			bl := newBatchLoader(t, l, nil, BatchOptions{BatchSize: 4, CacheBytes: cache})
			first := epoch(t, bl, 0)
			for _, b := range first {
				for j, i := range b.indices {
					n := 3 * 56 * 56
					require.Equal(t, perSample(t, l, i), b.images[j*n:(j+1)*n], "sample %d", i)
				}
			}
			require.Equal(t, first, epoch(t, bl, 1), "evaluation batches are the same every epoch")
			if cache == 0 {
				require.Equal(t, int64(6*3*56*56), bl.CachedBytes(), "the final pixels are cached")
			} else {
				require.Zero(t, bl.CachedBytes())
			}
		})
	}
	t.Run("training pipeline", func(t *testing.T) {
		// Without pre-size reduction (images are smaller than 256) and
		// with the generator the batch loader derives, batches hold what
		// Loader.Load computes.
		l := &Loader{Dataset: s.ds, Pipeline: trainPipeline(t, 32)}
		bl := newBatchLoader(t, l, nil, BatchOptions{BatchSize: 6, Shuffle: true, Seed: 5})
		for e := range 2 {
			b := epoch(t, bl, e)[0]
			order := bl.order(e)
			for j, i := range b.indices {
				img, _, err := l.Load(i, streamRand(5, e, uint64(order[j])))
				require.NoError(t, err)
				n := 3 * 32 * 32
				require.Equal(t, img.Data, b.images[j*n:(j+1)*n], "epoch %d sample %d", e, i)
			}
		}
	})
}

// TestBatchLoaderReduces checks the preparation of large images: DCT
// scaling and pre-size, the same with and without the cache.
func TestBatchLoaderReduces(t *testing.T) {
	s := writeTextured(t, 300, 200, 2, 2)
	tests := []struct {
		name    string
		pipe    *Pipeline
		opts    BatchOptions
		prepped image.Point // size of a prepared image
	}{
		// Resize(64) needs a shorter side of 64: 1/2 scale gives 100.
		{"eval", evalPipeline(t, 64, 48), BatchOptions{}, image.Pt(48, 48)},
		// A pre-size of 64 for RandomResizedCrop(32): 1/2 scale, then
		// resized to 96×64.
		{"train", trainPipeline(t, 32), BatchOptions{PreSize: 64}, image.Pt(96, 64)},
		{"train, default pre-size", trainPipeline(t, 32), BatchOptions{}, image.Pt(300, 200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Loader{Dataset: s.ds, Pipeline: tt.pipe}
			tt.opts.BatchSize = 2
			tt.opts.Seed = 1
			bl := newBatchLoader(t, l, nil, tt.opts)
			img, err := bl.prepare(s.ds.Samples[0].Path)
			require.NoError(t, err)
			require.Equal(t, tt.prepped, img.Bounds().Size())
			cached := epoch(t, bl, 0)
			require.Equal(t, int64(4*3*tt.prepped.X*tt.prepped.Y), bl.CachedBytes())
			tt.opts.CacheBytes = -1
			uncached := newBatchLoader(t, l, nil, tt.opts)
			require.Equal(t, cached, epoch(t, uncached, 0))
			require.Equal(t, epoch(t, bl, 1), epoch(t, uncached, 1))
		})
	}
}

// corrupt writes bad image files into the folder of class c of s and
// reloads the dataset.
func (s *testSet) corrupt(t *testing.T, c int, files map[string][]byte) []string {
	t.Helper()
	var paths []string
	for name, content := range files {
		path := filepath.Join(s.root, fmt.Sprintf("class%d", c), name)
		require.NoError(t, os.WriteFile(path, content, 0o644))
		paths = append(paths, path)
	}
	s.load(t)
	slices.Sort(paths)
	return paths
}

func TestBatchLoaderBadImages(t *testing.T) {
	s := writeSolid(t, 5, 5)
	good, err := os.ReadFile(s.ds.Samples[0].Path)
	require.NoError(t, err)
	var jpg strings.Builder
	require.NoError(t, jpeg.Encode(&jpg, textured(64, 64, 1), nil))
	bad := s.corrupt(t, 0, map[string][]byte{
		"img002a.png":  good[:len(good)/2],             // truncated PNG
		"img003a.jpg":  []byte(jpg.String())[:1000],    // truncated JPEG
		"notes.jpg":    []byte("not an image at all"),  // wrong content
		"img004a.jpeg": {0xff, 0xd8, 0xff, 0xe0, 0, 2}, // broken JPEG header
	})
	require.Len(t, s.ds.Samples, 14)
	pipe := evalPipeline(t, 32, 24)

	t.Run("fail", func(t *testing.T) {
		bl := newBatchLoader(t, &Loader{Dataset: s.ds, Pipeline: pipe}, nil, BatchOptions{BatchSize: 3, Workers: 2})
		var gotErr error
		for b, err := range bl.Epoch(context.Background(), 0) {
			if err != nil {
				gotErr = err
				break
			}
			b.Free()
		}
		require.Error(t, gotErr)
		require.Contains(t, gotErr.Error(), bad[0], "the first bad file in order is named")
	})

	// In order, the samples are 0 1 2 3* 4 5* 6 7* 8* | 9 .. 13, with the
	// bad ones starred. With batches of 3, batch [3* 4 5*] keeps sample 4
	// alone, which joins the next batch's lone sample 6.
	// A lone sample in the last batch has no batch to join: it is dropped.
	goodSamples := []int{0, 1, 2, 4, 6, 9, 10, 11, 12, 13}
	skipTests := []struct {
		name         string
		indices      []int
		opts         BatchOptions
		wantSizes    []int // nil: not checked
		wantSeen     []int
		wantWarnings int
		onSkip       bool // the skips go to OnSkip, not Logf
	}{
		{"in order", nil, BatchOptions{BatchSize: 3, Workers: 2}, []int{3, 2, 3, 2}, goodSamples, 4, false},
		{"in order, singletons kept", nil, BatchOptions{BatchSize: 3, Singleton: KeepSingleton},
			[]int{3, 1, 1, 3, 2}, goodSamples, 4, false},
		{"shuffled", nil, BatchOptions{BatchSize: 7, Workers: 3, Shuffle: true, Seed: 2}, nil, goodSamples, 4, false},
		{"lone last sample", []int{9, 10, 11, 5, 4}, BatchOptions{BatchSize: 3}, []int{3}, []int{9, 10, 11}, 1 + 2, false},
		{"OnSkip", nil, BatchOptions{BatchSize: 3, Workers: 2}, []int{3, 2, 3, 2}, goodSamples, 0, true},
	}
	for _, tt := range skipTests {
		t.Run("skip/"+tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var warnings []string
			tt.opts.OnBadImage = SkipBadImage
			tt.opts.Logf = func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				warnings = append(warnings, fmt.Sprintf(format, args...))
			}
			var told []string
			if tt.onSkip {
				tt.opts.OnSkip = func(sk SkippedImage) {
					mu.Lock()
					defer mu.Unlock()
					told = append(told, sk.Path)
				}
			}
			bl := newBatchLoader(t, &Loader{Dataset: s.ds, Pipeline: pipe}, tt.indices, tt.opts)
			lut := normLUT(ImageNet)
			for e := range 2 {
				var seen, sizes []int
				for _, b := range epoch(t, bl, e) {
					seen = append(seen, b.indices...)
					sizes = append(sizes, len(b.indices))
					require.Equal(t, int64(len(b.indices)), b.shape[0])
					for j, i := range b.indices {
						sample := s.ds.Samples[i]
						require.Equal(t, int64(sample.Label), b.labels[j])
						col := s.colour[sample.Path]
						require.Equal(t, lut[0][col[0]], b.images[j*3*24*24], "pixels of %s", sample.Path)
						require.Equal(t, lut[1][col[1]], b.images[j*3*24*24+24*24], "pixels of %s", sample.Path)
					}
				}
				require.ElementsMatch(t, tt.wantSeen, seen, "epoch %d: the good samples", e)
				if tt.wantSizes != nil {
					require.Equal(t, tt.wantSizes, sizes)
				}
			}
			var skipped []string
			for _, sk := range bl.Skipped() {
				require.Equal(t, sk.Path, s.ds.Samples[sk.Index].Path)
				require.ErrorContains(t, sk.Err, sk.Path)
				skipped = append(skipped, sk.Path)
			}
			if tt.indices == nil {
				require.Equal(t, bad, skipped)
			}
			require.Len(t, warnings, tt.wantWarnings, "one warning per file, not per epoch: %q", warnings)
			if tt.onSkip {
				require.ElementsMatch(t, bad, told, "OnSkip told once per file")
			}
		})
	}
}

// waitGoroutines waits until at most n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), n, "goroutines leaked")
}

func TestBatchLoaderStops(t *testing.T) {
	s := writeTextured(t, 64, 48, 20, 20)
	l := &Loader{Dataset: s.ds, Pipeline: trainPipeline(t, 24)}
	opts := BatchOptions{BatchSize: 2, Workers: 4, Prefetch: 3, Shuffle: true}
	tests := []struct {
		name    string
		stop    func(cancel context.CancelFunc, bl *BatchLoader) bool // false: break
		wantErr error
	}{
		{"break", func(context.CancelFunc, *BatchLoader) bool { return false }, nil},
		{"cancel", func(cancel context.CancelFunc, _ *BatchLoader) bool { cancel(); return true }, context.Canceled},
		{"close", func(_ context.CancelFunc, bl *BatchLoader) bool { require.NoError(t, bl.Close()); return true }, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			bl, err := NewBatchLoader(l, nil, opts)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			batches := 0
			var gotErr error
			for b, err := range bl.Epoch(ctx, 0) {
				if err != nil {
					gotErr = err
					break
				}
				batches++
				b.Free()
				if batches == 2 && !tt.stop(cancel, bl) {
					break
				}
			}
			require.ErrorIs(t, gotErr, tt.wantErr)
			require.Less(t, batches, bl.Len())
			require.NoError(t, bl.Close())
			waitGoroutines(t, before)
			for _, err := range bl.Epoch(context.Background(), 1) {
				require.ErrorIs(t, err, ErrClosed)
			}
		})
	}
}

func TestBatchLoaderOptions(t *testing.T) {
	s := writeSolid(t, 2, 2)
	l := &Loader{Dataset: s.ds, Pipeline: evalPipeline(t, 32, 24)}
	tests := []struct {
		name    string
		l       *Loader
		indices []int
		opts    BatchOptions
		wantErr string
	}{
		{"no batch size", l, nil, BatchOptions{}, "batch size 0"},
		{"index out of range", l, []int{0, 4}, BatchOptions{BatchSize: 2}, "index 4 out of range"},
		{"no samples", l, []int{}, BatchOptions{BatchSize: 2}, "no samples"},
		{"negative workers", l, nil, BatchOptions{BatchSize: 2, Workers: -1}, "negative workers"},
		{"no pipeline", &Loader{Dataset: s.ds}, nil, BatchOptions{BatchSize: 2}, "needs a Loader"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewBatchLoader(tt.l, tt.indices, tt.opts)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	t.Run("pin memory without CUDA", func(t *testing.T) {
		var notes []string
		bl := newBatchLoader(t, l, nil, BatchOptions{BatchSize: 2, PinMemory: true,
			Logf: func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }})
		b := epoch(t, bl, 0)
		require.Len(t, b, 2)
		if !bl.pin {
			require.Len(t, notes, 1)
			require.Contains(t, notes[0], "CUDA is not available")
		}
	})
	t.Run("a step panics", func(t *testing.T) {
		p, err := NewPipeline(ImageNet, panicStep{})
		require.NoError(t, err)
		bl := newBatchLoader(t, &Loader{Dataset: s.ds, Pipeline: p}, nil, BatchOptions{BatchSize: 2})
		for _, err := range bl.Epoch(context.Background(), 0) {
			require.ErrorContains(t, err, s.ds.Samples[0].Path+": panic: boom")
		}
	})
	t.Run("images of different sizes", func(t *testing.T) {
		// Resize alone keeps the aspect ratio: 40×30 and 30×40 images
		// cannot share a batch.
		s := writeSolid(t, 1, 1)
		writePNG(t, filepath.Join(s.root, "class1", "tall.png"), image.NewNRGBA(image.Rect(0, 0, 30, 40)))
		s.load(t)
		p, err := NewPipeline(ImageNet, Resize{Size: 24})
		require.NoError(t, err)
		bl := newBatchLoader(t, &Loader{Dataset: s.ds, Pipeline: p}, nil, BatchOptions{BatchSize: 3})
		for _, err := range bl.Epoch(context.Background(), 0) {
			require.ErrorContains(t, err, "tall.png: image is 24x32 after the pipeline")
		}
	})
}

// TestBatchLoaderImages: Images yields Epoch's images, batch by batch in
// the epoch's order, frees each batch once the loop body is done with it
// (breaking out included) and ends with the epoch's error.
func TestBatchLoaderImages(t *testing.T) {
	s := writeTextured(t, 64, 48, 5, 6)
	l := &Loader{Dataset: s.ds, Pipeline: evalPipeline(t, 32, 24)}
	bl := newBatchLoader(t, l, nil, BatchOptions{BatchSize: 4, Workers: 2, Shuffle: true, Seed: 3})
	want := epoch(t, bl, 1)
	require.Len(t, want, 3)

	var seen []*torch.Tensor
	for x, err := range bl.Images(context.Background(), 1) {
		require.NoError(t, err)
		if len(seen) > 0 {
			require.Nil(t, seen[len(seen)-1].Shape(), "the previous batch is freed")
		}
		b := want[len(seen)]
		require.Equal(t, b.shape, x.Shape())
		images, err := x.Float32s()
		require.NoError(t, err)
		require.Equal(t, b.images, images, "batch %d", len(seen))
		seen = append(seen, x)
	}
	require.Len(t, seen, len(want))
	require.Nil(t, seen[len(seen)-1].Shape(), "the last batch is freed")

	before := runtime.NumGoroutine()
	for x := range bl.Images(context.Background(), 0) {
		seen = append(seen[:0], x)
		break
	}
	require.Nil(t, seen[0].Shape(), "the batch broken out of is freed")
	waitGoroutines(t, before)

	bad := s.corrupt(t, 1, map[string][]byte{"img000a.jpg": []byte("not an image at all")})
	broken := newBatchLoader(t, &Loader{Dataset: s.ds, Pipeline: l.Pipeline}, nil, BatchOptions{BatchSize: 4})
	var gotErr error
	batches := 0
	for x, err := range broken.Images(context.Background(), 0) {
		if err != nil {
			require.Nil(t, x)
			gotErr = err
			continue // the iterator ends after its error
		}
		batches++
	}
	require.ErrorContains(t, gotErr, bad[0])
	require.Equal(t, 1, batches, "the batches before the bad image's")
}
