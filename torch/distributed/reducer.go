package distributed

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// DefaultBucketBytes is the size of GradReducer's buckets when zero is
// given: torch's DistributedDataParallel's 25 MiB.
const DefaultBucketBytes = 25 << 20

// GradReducer averages gradients over the ranks of a group, as
// DistributedDataParallel does, between backward and the optimizer's
// step. It copies the gradients into flat buckets of about bucketBytes,
// all-reduces the buckets (all in flight together) and copies the
// averages back: a few large messages instead of one per parameter.
//
// Every rank must pass the same parameters, in the same order. Unlike
// DistributedDataParallel the reduction starts after backward, not
// overlapped with it.
type GradReducer struct {
	pg          *ProcessGroup
	bucketBytes int64

	// The layout of the last parameters reduced, kept while they stay
	// the same.
	params  []*torch.Tensor
	shapes  [][]int64
	buckets []bucket
}

// bucket is a run of parameters of one type and device.
type bucket struct {
	flat       *torch.Tensor // 1-d, the parameters' sizes summed
	first, end int           // params[first:end]
}

// NewGradReducer returns a reducer over pg with buckets of about
// bucketBytes (0 means DefaultBucketBytes).
func NewGradReducer(pg *ProcessGroup, bucketBytes int64) *GradReducer {
	if bucketBytes <= 0 {
		bucketBytes = DefaultBucketBytes
	}
	return &GradReducer{pg: pg, bucketBytes: bucketBytes}
}

// Reduce replaces the gradient of each parameter by its average over the
// ranks. A parameter without a gradient counts as a zero gradient and is
// given the average, so that ranks agree whichever parameters their
// batch reached.
func (r *GradReducer) Reduce(params []*torch.Tensor) error {
	if err := r.layout(params); err != nil {
		return err
	}
	s := torch.NewScope()
	defer s.Close()
	return torch.NoGrad(func() error {
		views := make([]*torch.Tensor, len(params))
		flats := make([]*torch.Tensor, len(r.buckets))
		for bi, b := range r.buckets {
			flats[bi] = b.flat
			off := int64(0)
			for i := b.first; i < b.end; i++ {
				v, err := view(b.flat, off, r.shapes[i])
				if err != nil {
					return err
				}
				off += numel(r.shapes[i])
				g, err := params[i].Grad()
				if err != nil {
					return err
				}
				if g == nil {
					err = v.Zero_()
				} else {
					err = v.Copy_(g)
				}
				if err != nil {
					return err
				}
				views[i] = v
			}
		}
		if err := r.pg.AllReduce(flats, Avg); err != nil {
			return err
		}
		for i, p := range params {
			g, err := p.Grad()
			if err != nil {
				return err
			}
			if g == nil {
				c, err := views[i].Clone()
				if err == nil {
					err = p.SetGrad(c)
				}
				if err != nil {
					return err
				}
				continue
			}
			if err := g.Copy_(views[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// layout makes the buckets for params unless they are those of the last
// call.
func (r *GradReducer) layout(params []*torch.Tensor) error {
	if samePointers(params, r.params) {
		return nil
	}
	r.Free()
	r.shapes = make([][]int64, len(params))
	for i, p := range params {
		if !p.Defined() {
			return fmt.Errorf("distributed: gradient reducer: parameter %d is nil or freed", i)
		}
		r.shapes[i] = p.Shape()
	}
	for first := 0; first < len(params); {
		dt, dev := params[first].DType(), params[first].Device()
		n, end := int64(0), first
		for end < len(params) && params[end].DType() == dt && params[end].Device() == dev &&
			(end == first || (n+numel(r.shapes[end]))*int64(dt.Size()) <= r.bucketBytes) {
			n += numel(r.shapes[end])
			end++
		}
		flat, err := torch.Empty([]int64{n}, dt, dev)
		if err != nil {
			r.Free()
			return err
		}
		r.buckets = append(r.buckets, bucket{flat: flat.Keep(), first: first, end: end})
		first = end
	}
	r.params = append([]*torch.Tensor(nil), params...)
	return nil
}

// Free releases the buckets; the next Reduce makes new ones.
func (r *GradReducer) Free() {
	for _, b := range r.buckets {
		b.flat.Free()
	}
	r.buckets, r.params, r.shapes = nil, nil, nil
}

// BroadcastModule copies root's parameters and buffers of m into m on
// every rank, so that all start from the same weights.
func (pg *ProcessGroup) BroadcastModule(m nn.Module, root int) error {
	return pg.Broadcast(values(nn.StateDict(m)), root)
}

// BroadcastBuffers copies root's buffers of m (BatchNorm's running
// statistics, say) into m on every rank.
func (pg *ProcessGroup) BroadcastBuffers(m nn.Module, root int) error {
	return pg.Broadcast(values(nn.NamedBuffers(m)), root)
}

func values(named []nn.Named[*torch.Tensor]) []*torch.Tensor {
	out := make([]*torch.Tensor, len(named))
	for i, e := range named {
		out[i] = e.Value
	}
	return out
}

func view(flat *torch.Tensor, off int64, shape []int64) (*torch.Tensor, error) {
	v, err := flat.Narrow(0, off, numel(shape))
	if err != nil {
		return nil, err
	}
	return v.View(shape...)
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, s := range shape {
		n *= s
	}
	return n
}

func samePointers(a, b []*torch.Tensor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
