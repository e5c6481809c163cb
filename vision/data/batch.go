package data

import (
	"context"
	"errors"
	"fmt"
	"image"
	"iter"
	"log"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/finetune-go/finetune/torch"
)

// DefaultCacheBytes is the memory budget of a BatchLoader's image cache
// when BatchOptions.CacheBytes is zero: 2 GiB.
const DefaultCacheBytes = 2 << 30

// DefaultPreSize is the shorter side, in pixels, to which a BatchLoader
// reduces images ahead of a pipeline's leading RandomResizedCrop, unless
// the crop is larger or BatchOptions.PreSize says otherwise. It is the
// Resize side of torchvision's evaluation recipe.
const DefaultPreSize = 256

// ErrClosed is returned by an epoch of a closed BatchLoader.
var ErrClosed = errors.New("data: batch loader closed")

// SingletonPolicy says what a BatchLoader does with a last batch that
// would hold a single sample. Such a batch fails in a BatchNorm layer in
// training mode, which needs more than one value per channel.
//
// Under SkipBadImage, a batch that skipped images leave with one sample
// of several is merged into the next batch, whatever the policy but
// KeepSingleton; when it is the last batch of the epoch, that sample is
// dropped, with a warning.
type SingletonPolicy int

const (
	// MergeSingleton, the default, appends the lone sample to the batch
	// before it, which then has BatchSize+1 samples. An epoch of a single
	// sample still yields a batch of one.
	MergeSingleton SingletonPolicy = iota
	// DropSingleton leaves the lone sample out of the epoch.
	DropSingleton
	// KeepSingleton yields it as a batch of one, as torch's DataLoader does.
	KeepSingleton
)

// BadImagePolicy says what a BatchLoader does with a sample it cannot
// load: a file that is missing, damaged, too large or not an image.
type BadImagePolicy int

const (
	// FailOnBadImage, the default, ends the epoch with an error naming the
	// file.
	FailOnBadImage BadImagePolicy = iota
	// SkipBadImage leaves the sample out of its batch, logs a warning the
	// first time, and lists it in Skipped. The other samples keep their
	// labels and Batch.Indices says which samples a batch holds.
	SkipBadImage
)

// BatchOptions configures a BatchLoader. Only BatchSize is required.
type BatchOptions struct {
	BatchSize int // samples per batch
	Workers   int // goroutines loading batches; 0 means runtime.GOMAXPROCS(0)
	Prefetch  int // batches prepared ahead of the consumer; 0 means 2 per worker

	// Shuffle draws a new order of the samples every epoch from Seed and
	// the epoch number. Seed also seeds the random steps of the pipeline:
	// sample k of the loader (k indexing the indices given to
	// NewBatchLoader) draws from a generator seeded by (Seed, epoch, k),
	// so the same seed yields the same batches, pixel for pixel, whatever
	// the number of workers and their timing.
	Shuffle bool
	Seed    uint64

	// DropLast leaves out a last batch smaller than BatchSize. Otherwise
	// Singleton decides the fate of a last batch of one sample.
	DropLast  bool
	Singleton SingletonPolicy

	// PinMemory makes batch tensors in page-locked memory, which the CUDA
	// driver copies to the GPU faster and asynchronously. Pinning needs
	// CUDA: without it (torch.CUDAIsAvailable false) the option does
	// nothing and NewBatchLoader logs a note saying so.
	PinMemory bool

	// CacheBytes bounds the memory that prepared images may take: images
	// are decoded and prepared (see BatchLoader) once and kept as RGB
	// bytes, so later epochs only run the random steps, until the budget
	// is spent; the rest are prepared again every epoch. 0 means
	// DefaultCacheBytes; a negative value disables the cache.
	CacheBytes int64

	// PreSize is the shorter side to which images are reduced before a
	// leading RandomResizedCrop: 0 means max(DefaultPreSize, crop size),
	// a negative value keeps the decoded size, as torchvision does.
	PreSize int

	OnBadImage BadImagePolicy

	// Logf prints warnings (skipped images, ignored options); nil means
	// log.Printf.
	Logf func(format string, args ...any)
	// OnSkip, when set, is told of each sample skipped under SkipBadImage
	// instead of Logf, such as by a caller that reports the skips of
	// several loaders once. It may be called from the loader's goroutines.
	OnSkip func(SkippedImage)

	// Sampler, when set, picks the positions an epoch visits from its
	// order (shuffled or not), such as one rank's share in data-parallel
	// training (distributed.Shard). It must return as many positions
	// every epoch; Len, Order and Bounds follow it.
	Sampler func(order []int) []int
}

// A Batch is a batch of samples as CPU tensors. It is made outside any
// torch.Scope, on a loader goroutine: the consumer owns it and releases
// it with Free once the training step no longer needs it (tensors derived
// from it, such as a copy on the GPU, are the step's own). An unfreed
// batch is released by the garbage collector, later.
type Batch struct {
	Images  *torch.Tensor // N×3×H×W float32, normalised
	Labels  *torch.Tensor // N int64 class indices
	Indices []int         // the dataset indices of the N samples, in order
}

// Free releases the batch's tensors. It is safe to call more than once.
func (b *Batch) Free() {
	b.Images.Free()
	b.Labels.Free()
}

// SkippedImage is a sample a BatchLoader left out under SkipBadImage.
type SkippedImage struct {
	Index int    // index in the dataset
	Path  string // the file
	Err   error  // why it could not be loaded
}

// A BatchLoader turns the samples of a Loader into batches of tensors,
// epoch after epoch, with worker goroutines that decode and augment in
// parallel while the consumer trains.
//
// # Preparation and caching
//
// Each image is first prepared, deterministically: decoded, reduced, and
// run through the pipeline's leading deterministic steps. Then the random
// steps, ToCHW and normalisation run every time the sample is used. The
// prepared images are cached, within a memory budget, so that later
// epochs skip decoding; an evaluation pipeline, deterministic throughout,
// is prepared all the way to its final pixels and later epochs only
// convert them to float32. Results are the same with and without the
// cache.
//
// Reduction is what makes images worth caching. When the Loader's Decode
// is nil, JPEG files are decoded by DecodeScaled, at the smallest DCT
// scale that keeps the shorter side at or above what the pipeline needs:
//
//   - for a pipeline that starts with Resize(s) (an evaluation pipeline),
//     s; the Resize then shrinks the image as usual;
//   - for one that starts with RandomResizedCrop(c) (a training
//     pipeline), the pre-size: max(256, c) unless BatchOptions.PreSize
//     says otherwise; an image still larger after decoding is resized to
//     that shorter side with the bilinear filter, whatever its format.
//
// Both depart from torchvision, which decodes and crops images at full
// resolution. DCT scaling is a block average where PIL's resize weighs
// neighbours, so an evaluation image that was scaled differs from
// torchvision's by a few levels; set the Loader's Decode to DecodeTurbo
// for torchvision's pixels exactly (images smaller than twice the Resize
// side are never scaled, and match anyway). For training, the crop
// regions are drawn on the reduced image: the same fractions of the
// picture, but a small crop of a large photo is cut from fewer pixels and
// comes out softer than torchvision's, about what training on a
// pre-resized copy of the dataset gives, as fast ImageNet recipes do. A
// negative PreSize keeps full resolution, at the price of decoding every
// epoch the photos too large to cache.
//
// A BatchLoader is safe for concurrent use; Close stops it.
type BatchLoader struct {
	dataset   *Dataset
	indices   []int
	opts      BatchOptions
	bounds    [][2]int // the batches of an epoch, as ranges of its order
	decode    func(path string) (*image.NRGBA, error)
	prefix    []Step // the pipeline's leading deterministic steps
	rest      []Step // the others
	preSize   int    // shorter side to reduce to before rest; 0: none
	lut       *[3][256]float32
	cacheSize int64
	cache     []atomic.Pointer[rgbImage] // by dataset index
	cacheUsed atomic.Int64               // bytes in cache
	bufs      sync.Pool                  // *[]float32 batch buffers
	pin       bool

	mu      sync.Mutex
	closed  bool
	workers sync.WaitGroup // the goroutines of all epochs
	stop    context.CancelFunc
	stopped context.Context // done once Close is called
	skipped map[int]SkippedImage
}

// NewBatchLoader returns a loader of the samples of l.Dataset at the given
// indices, in that order unless opts.Shuffle, or of all its samples when
// indices is nil. Indices may repeat (to oversample a class, say).
func NewBatchLoader(l *Loader, indices []int, opts BatchOptions) (*BatchLoader, error) {
	if l == nil || l.Dataset == nil || l.Pipeline == nil {
		return nil, errors.New("data: batch loader needs a Loader with a Dataset and a Pipeline")
	}
	n := len(l.Dataset.Samples)
	if indices == nil {
		indices = make([]int, n)
		for i := range indices {
			indices[i] = i
		}
	}
	if len(indices) == 0 {
		return nil, errors.New("data: batch loader: no samples")
	}
	for _, i := range indices {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("data: batch loader: index %d out of range [0, %d)", i, n)
		}
	}
	if opts.BatchSize <= 0 {
		return nil, fmt.Errorf("data: batch loader: batch size %d must be positive", opts.BatchSize)
	}
	if opts.Workers < 0 || opts.Prefetch < 0 {
		return nil, fmt.Errorf("data: batch loader: negative workers (%d) or prefetch (%d)", opts.Workers, opts.Prefetch)
	}
	if opts.Workers == 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = 2 * opts.Workers
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	bl := &BatchLoader{
		dataset: l.Dataset,
		indices: append([]int(nil), indices...),
		opts:    opts,
		bounds:  batchBounds(sampledLen(len(indices), opts.Sampler), opts),
		lut:     normLUT(l.Pipeline.Normalization()),
		skipped: map[int]SkippedImage{},
	}
	bl.stopped, bl.stop = context.WithCancel(context.Background())

	steps := l.Pipeline.Steps()
	k := 0
	for k < len(steps) && !steps[k].Random() {
		k++
	}
	bl.prefix, bl.rest = steps[:k], steps[k:]
	minSide := 0
	switch s := firstStep(steps).(type) {
	case Resize:
		minSide = s.Size
	case RandomResizedCrop:
		if opts.PreSize >= 0 {
			bl.preSize = opts.PreSize
			if bl.preSize == 0 {
				bl.preSize = max(DefaultPreSize, s.Size)
			}
			minSide = bl.preSize
		}
	}
	maxPixels := l.MaxPixels
	if custom := l.Decode; custom != nil {
		bl.decode = func(path string) (*image.NRGBA, error) { return custom(path, maxPixels) }
	} else {
		bl.decode = func(path string) (*image.NRGBA, error) { return DecodeScaled(path, minSide, maxPixels) }
	}

	bl.cacheSize = opts.CacheBytes
	if bl.cacheSize == 0 {
		bl.cacheSize = DefaultCacheBytes
	}
	if bl.cacheSize > 0 {
		bl.cache = make([]atomic.Pointer[rgbImage], n)
	}
	if opts.PinMemory {
		bl.pin = torch.CUDAIsAvailable()
		if !bl.pin {
			opts.Logf("data: batch loader: PinMemory ignored: CUDA is not available, batches stay in pageable memory")
		}
	}
	return bl, nil
}

// batchBounds splits an epoch of n samples into batches, as ranges of
// positions in the epoch's order, following opts' DropLast and Singleton.
func batchBounds(n int, opts BatchOptions) [][2]int {
	size := opts.BatchSize
	var b [][2]int
	for s := 0; s < n; s += size {
		b = append(b, [2]int{s, min(s+size, n)})
	}
	last := len(b) - 1
	switch rem := n % size; {
	case rem == 0:
	case opts.DropLast:
		b = b[:last]
	case rem == 1 && last > 0 && opts.Singleton == MergeSingleton:
		b[last-1][1] = n
		b = b[:last]
	case rem == 1 && opts.Singleton == DropSingleton:
		b = b[:last]
	}
	return b
}

// Len returns the number of batches of an epoch. Under SkipBadImage an
// epoch yields fewer when skipped images leave a batch empty.
func (bl *BatchLoader) Len() int { return len(bl.bounds) }

// order returns the loader positions (indexes into bl.indices) of epoch
// e in the order it visits them.
func (bl *BatchLoader) order(epoch int) []int {
	order := make([]int, len(bl.indices))
	for i := range order {
		order[i] = i
	}
	if bl.opts.Shuffle {
		r := streamRand(bl.opts.Seed, epoch, shuffleStream)
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	if bl.opts.Sampler != nil {
		order = bl.opts.Sampler(order)
	}
	return order
}

// sampledLen returns how many of n positions an epoch visits.
func sampledLen(n int, sampler func([]int) []int) int {
	if sampler == nil {
		return n
	}
	return len(sampler(make([]int, n)))
}

// shuffleStream is the stream number of an epoch's shuffling; samples use
// their position, which is smaller.
const shuffleStream = 1 << 63

// streamRand returns the generator of stream s of an epoch: PCG seeded by
// a hash of (seed, epoch, s).
func streamRand(seed uint64, epoch int, s uint64) *rand.Rand {
	h := splitmix(splitmix(splitmix(seed)^uint64(epoch)) ^ s)
	return rand.New(rand.NewPCG(h, splitmix(h)))
}

// splitmix is SplitMix64's output function, a strong 64-bit mixer.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Epoch returns the batches of epoch e, counted from 0, for a range loop:
//
//	for batch, err := range loader.Epoch(ctx, epoch) {
//		if err != nil {
//			return err
//		}
//		... train on batch.Images and batch.Labels ...
//		batch.Free()
//	}
//
// The workers start when the loop does and stop when it ends, early
// included: breaking out of the loop, cancelling ctx and Close all stop
// them and free the batches prepared in advance before the loop returns.
// An error ends the epoch: a bad image under FailOnBadImage, ctx's error
// when it is cancelled, ErrClosed after Close.
func (bl *BatchLoader) Epoch(ctx context.Context, epoch int) iter.Seq2[*Batch, error] {
	return func(yield func(*Batch, error) bool) {
		if err := bl.run(ctx, epoch, yield); err != nil {
			yield(nil, err)
		}
	}
}

// Images returns the images of epoch e's batches, for consumers that need
// no labels (BatchNorm statistics, feature statistics):
//
//	for x, err := range loader.Images(ctx, epoch) {
//		if err != nil {
//			return err
//		}
//		... use x ...
//	}
//
// The loop does not own x: each batch is freed when the loop body
// returns, so a tensor kept past that point must be a copy. Stopping
// early, cancelling and errors behave as with Epoch, and a batch is freed
// when the loop breaks out of it too.
func (bl *BatchLoader) Images(ctx context.Context, e int) iter.Seq2[*torch.Tensor, error] {
	return func(yield func(*torch.Tensor, error) bool) {
		for b, err := range bl.Epoch(ctx, e) {
			if err != nil {
				yield(nil, err)
				return
			}
			more := yield(b.Images, nil)
			b.Free()
			if !more {
				return
			}
		}
	}
}

// job is one batch of an epoch on its way through the workers.
type job struct {
	positions []int
	done      chan jobResult // buffered: a worker never waits
}

type jobResult struct {
	batch *Batch
	lone  bool // see batch
	err   error
}

// run produces epoch e's batches for yield and returns the error that
// ended it, if any.
func (bl *BatchLoader) run(parent context.Context, epoch int, yield func(*Batch, error) bool) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	defer context.AfterFunc(bl.stopped, cancel)()
	stopErr := func() error {
		if bl.stopped.Err() != nil {
			return ErrClosed
		}
		if err := parent.Err(); err != nil {
			return err
		}
		return context.Canceled
	}

	order := bl.order(epoch)
	queue := make(chan *job, bl.opts.Prefetch) // batches in order, at most Prefetch ahead
	jobs := make(chan *job)
	var wg sync.WaitGroup // this epoch's goroutines
	bl.mu.Lock()
	if bl.closed {
		bl.mu.Unlock()
		return ErrClosed
	}
	wg.Add(1 + bl.opts.Workers)
	bl.workers.Add(1 + bl.opts.Workers)
	bl.mu.Unlock()
	go func() {
		defer bl.workers.Done()
		defer wg.Done()
		defer close(queue)
		defer close(jobs)
		for _, b := range bl.bounds {
			j := &job{positions: order[b[0]:b[1]], done: make(chan jobResult, 1)}
			select {
			case queue <- j:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range bl.opts.Workers {
		go func() {
			defer bl.workers.Done()
			defer wg.Done()
			for j := range jobs {
				b, lone, err := bl.batch(ctx, epoch, j.positions)
				j.done <- jobResult{b, lone, err}
			}
		}()
	}

	var cur *job // taken from the queue, its batch not yet received
	defer func() {
		cancel()
		wg.Wait()
		free := func(j *job) {
			select {
			case r := <-j.done:
				if r.batch != nil {
					r.batch.Free()
				}
			default: // never started
			}
		}
		if cur != nil {
			free(cur)
		}
		for j := range queue {
			free(j)
		}
	}()

	// A batch that skipped images left with one sample waits in carry
	// for the next batch, which takes it in.
	var carry *Batch
	defer func() {
		if carry != nil {
			carry.Free()
		}
	}()
	for cur = range queue {
		if ctx.Err() != nil {
			return stopErr()
		}
		var r jobResult
		select {
		case r = <-cur.done:
			cur = nil
		case <-ctx.Done():
			return stopErr()
		}
		switch {
		case r.err != nil && ctx.Err() != nil:
			return stopErr()
		case r.err != nil:
			return r.err
		case r.batch == nil: // every sample skipped
			continue
		case carry != nil:
			b, err := bl.merge(carry, r.batch)
			carry = nil
			if err != nil {
				return err
			}
			r.batch = b
		case r.lone:
			carry = r.batch
			continue
		}
		if !yield(r.batch, nil) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return stopErr()
	}
	if carry != nil {
		bl.opts.Logf("data: batch loader: dropped sample %d (%s): skipped images left it alone in the last batch",
			carry.Indices[0], bl.dataset.Samples[carry.Indices[0]].Path)
	}
	return nil
}

// batch loads the samples at the given loader positions into a Batch.
// Under SkipBadImage it returns nil when no sample is left, and reports
// lone when one is, of several, and the Singleton policy forbids a batch
// of one.
func (bl *BatchLoader) batch(ctx context.Context, epoch int, positions []int) (*Batch, bool, error) {
	var (
		buf     *[]float32
		h, w    int
		labels  = make([]int64, 0, len(positions))
		indices = make([]int, 0, len(positions))
	)
	defer func() {
		if buf != nil {
			bl.bufs.Put(buf)
		}
	}()
	for _, pos := range positions {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		i := bl.indices[pos]
		if bl.isSkipped(i) {
			continue
		}
		img, err := bl.sample(i, streamRand(bl.opts.Seed, epoch, uint64(pos)))
		if err == nil && buf != nil && (img.h != h || img.w != w) {
			err = fmt.Errorf("data: %s: image is %dx%d after the pipeline, the batch's others %dx%d: end the pipeline with a crop",
				bl.dataset.Samples[i].Path, img.w, img.h, w, h)
		}
		if err != nil {
			if bl.opts.OnBadImage == SkipBadImage {
				bl.skip(i, err)
				continue
			}
			return nil, false, fmt.Errorf("data: batch loader: sample %d: %w", i, err)
		}
		if buf == nil {
			h, w = img.h, img.w
			buf = bl.buffer(len(positions) * 3 * h * w)
		}
		img.writeCHW((*buf)[len(labels)*3*h*w:], bl.lut)
		labels = append(labels, int64(bl.dataset.Samples[i].Label))
		indices = append(indices, i)
	}
	n := len(labels)
	if n == 0 {
		return nil, false, nil
	}
	images, err := torch.FromSlice((*buf)[:n*3*h*w], int64(n), 3, int64(h), int64(w))
	if err != nil {
		return nil, false, fmt.Errorf("data: batch loader: %w", err)
	}
	lt, err := torch.FromSlice(labels)
	if err != nil {
		images.Free()
		return nil, false, fmt.Errorf("data: batch loader: %w", err)
	}
	b := &Batch{Images: images, Labels: lt, Indices: indices}
	if bl.pin {
		if err := b.pinMemory(); err != nil {
			b.Free()
			return nil, false, fmt.Errorf("data: batch loader: %w", err)
		}
	}
	return b, n == 1 && len(positions) > 1 && bl.opts.Singleton != KeepSingleton, nil
}

// merge returns the samples of a then b as one batch and frees a and b.
// It runs on the consumer's goroutine: Keep takes the new tensors out of
// any scope open there, since the consumer frees the batch.
func (bl *BatchLoader) merge(a, b *Batch) (*Batch, error) {
	defer a.Free()
	defer b.Free()
	images, err := torch.Cat([]*torch.Tensor{a.Images, b.Images}, 0)
	if err != nil {
		return nil, fmt.Errorf("data: batch loader: %w", err)
	}
	labels, err := torch.Cat([]*torch.Tensor{a.Labels, b.Labels}, 0)
	if err != nil {
		images.Free()
		return nil, fmt.Errorf("data: batch loader: %w", err)
	}
	m := &Batch{Images: images.Keep(), Labels: labels.Keep(), Indices: slices.Concat(a.Indices, b.Indices)}
	if bl.pin {
		if err := m.pinMemory(); err != nil {
			m.Free()
			return nil, fmt.Errorf("data: batch loader: %w", err)
		}
	}
	return m, nil
}

// buffer returns a batch buffer of n floats from the pool.
func (bl *BatchLoader) buffer(n int) *[]float32 {
	if p, ok := bl.bufs.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]float32, n)
	return &b
}

// pinMemory replaces b's tensors by page-locked copies, outside any
// scope.
func (b *Batch) pinMemory() error {
	for _, t := range []**torch.Tensor{&b.Images, &b.Labels} {
		out, err := torch.CallOp("aten::pin_memory", "", *t)
		if err != nil {
			return fmt.Errorf("pin memory: %w", err)
		}
		(*t).Free()
		*t = out[0].Keep()
	}
	return nil
}

// sample returns dataset sample i through the whole pipeline but ToCHW,
// drawing the random steps' parameters from r. It never panics: a panic
// in a step comes back as an error.
func (bl *BatchLoader) sample(i int, r *rand.Rand) (img pixels, err error) {
	path := bl.dataset.Samples[i].Path
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("data: %s: panic: %v", path, p)
		}
	}()
	rest := bl.rest
	var out *image.NRGBA
	if c := bl.cached(i); c != nil {
		switch crop, ok := firstStep(rest).(RandomResizedCrop); {
		case len(rest) == 0:
			return c.pixels(), nil
		case ok:
			// What crop.Apply does, unpacking only the region it reads.
			out = resizeBilinear(c.nrgba(crop.Params(c.w, c.h, r)), crop.Size, crop.Size)
			rest = rest[1:]
		default:
			out = c.nrgba(image.Rect(0, 0, c.w, c.h))
		}
	} else {
		if out, err = bl.prepare(path); err != nil {
			return pixels{}, err
		}
		bl.store(i, out)
	}
	for _, s := range rest {
		if out = s.Apply(out, r); out == nil || out.Bounds().Empty() {
			return pixels{}, fmt.Errorf("data: %s: step %T returned an empty image", path, s)
		}
	}
	return nrgbaPixels(out), nil
}

// prepare decodes an image file, reduces it to the pre-size and runs the
// pipeline's leading deterministic steps.
func (bl *BatchLoader) prepare(path string) (*image.NRGBA, error) {
	img, err := bl.decode(path)
	if err != nil {
		return nil, err
	}
	if b := img.Bounds(); bl.preSize > 0 && min(b.Dx(), b.Dy()) > bl.preSize {
		img = Resize{Size: bl.preSize}.Apply(img, nil)
	}
	for _, s := range bl.prefix {
		if img = s.Apply(img, nil); img == nil || img.Bounds().Empty() {
			return nil, fmt.Errorf("data: %s: step %T returned an empty image", path, s)
		}
	}
	return img, nil
}

// firstStep returns steps[0], or nil.
func firstStep(steps []Step) Step {
	if len(steps) == 0 {
		return nil
	}
	return steps[0]
}

// cached returns the cached prepared image of sample i, or nil.
func (bl *BatchLoader) cached(i int) *rgbImage {
	if bl.cache == nil {
		return nil
	}
	return bl.cache[i].Load()
}

// store caches the prepared image of sample i if the budget allows.
func (bl *BatchLoader) store(i int, img *image.NRGBA) {
	if bl.cache == nil {
		return
	}
	size := int64(3 * img.Bounds().Dx() * img.Bounds().Dy())
	if bl.cacheUsed.Add(size) > bl.cacheSize {
		bl.cacheUsed.Add(-size)
		return
	}
	if !bl.cache[i].CompareAndSwap(nil, packRGB(img)) {
		bl.cacheUsed.Add(-size) // another worker stored it first
	}
}

// CachedBytes returns the memory the cache of prepared images holds now.
func (bl *BatchLoader) CachedBytes() int64 { return bl.cacheUsed.Load() }

func (bl *BatchLoader) isSkipped(i int) bool {
	if bl.opts.OnBadImage != SkipBadImage {
		return false
	}
	bl.mu.Lock()
	defer bl.mu.Unlock()
	_, ok := bl.skipped[i]
	return ok
}

// skip records that sample i was skipped and warns about it.
func (bl *BatchLoader) skip(i int, err error) {
	bl.mu.Lock()
	_, seen := bl.skipped[i]
	if !seen {
		bl.skipped[i] = SkippedImage{Index: i, Path: bl.dataset.Samples[i].Path, Err: err}
	}
	bl.mu.Unlock()
	switch {
	case seen:
	case bl.opts.OnSkip != nil:
		bl.opts.OnSkip(SkippedImage{Index: i, Path: bl.dataset.Samples[i].Path, Err: err})
	default:
		bl.opts.Logf("data: batch loader: skipping sample %d: %v", i, err)
	}
}

// Skipped returns the samples left out under SkipBadImage so far, by
// dataset index. A skipped sample is not tried again.
func (bl *BatchLoader) Skipped() []SkippedImage {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	out := make([]SkippedImage, 0, len(bl.skipped))
	for _, s := range bl.skipped {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b SkippedImage) int { return a.Index - b.Index })
	return out
}

// Close stops the epochs in progress, which end with ErrClosed, waits
// for their workers to exit and releases the cache. Later epochs yield
// ErrClosed. Closing twice is a no-op. Close may be called from inside an
// epoch's loop.
func (bl *BatchLoader) Close() error {
	bl.mu.Lock()
	if bl.closed {
		bl.mu.Unlock()
		return nil
	}
	bl.closed = true
	bl.mu.Unlock()
	bl.stop()
	bl.workers.Wait()
	bl.cache = nil
	bl.cacheUsed.Store(0)
	return nil
}
