// Package bench holds the workloads of the benchmarks that compare this
// project with PyTorch on the same libtorch: a full training step, eval-mode
// inference and a frozen-backbone fine-tuning epoch. bench/cmd/gowork
// serves them to the runner (bench/cmd/runbench, started by bench/run.sh),
// bench/py/work.py serves PyTorch's equivalents, and bench_test.go runs
// them as go test benchmarks. BENCHMARKS.md at the repository root records
// the results.
//
// Every workload runs on synthetic tensors made once up front (random
// images and labels), so that a measure is the model's work alone; the
// loader has a benchmark of its own (bench/loader).
package bench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/torch/optim"
	"github.com/finetune-go/finetune/vision/models"
)

// Hyper-parameters of every SGD in the benchmarks (the same in
// bench/py/work.py).
const (
	LR       = 0.01
	Momentum = 0.9
)

func images(batch, size int) (*torch.Tensor, error) {
	x, err := torch.Randn([]int64{int64(batch), 3, int64(size), int64(size)})
	if err != nil {
		return nil, err
	}
	return x.Keep(), nil
}

func labels(n int, classes int64) (*torch.Tensor, error) {
	y, err := torch.Randint(0, classes, []int64{int64(n)})
	if err != nil {
		return nil, err
	}
	return y.Keep(), nil
}

func sgd(params []nn.Named[*torch.Tensor]) (*optim.SGD, error) {
	g := optim.ParamGroup{LR: LR, Momentum: Momentum}
	for _, p := range params {
		g.Params = append(g.Params, p.Value)
	}
	return optim.NewSGD(g)
}

// Train is a full training step of a torchvision ResNet: forward,
// cross-entropy loss, backward and an SGD step with momentum over every
// parameter, on one fixed batch.
type Train struct {
	Model *models.ResNet
	Opt   *optim.SGD
	X, Y  *torch.Tensor
}

// NewTrain builds arch with classes outputs in training mode and a batch
// of batch random images of size×size pixels.
func NewTrain(arch string, batch, size int, classes int64) (*Train, error) {
	m, err := models.New(arch, classes)
	if err != nil {
		return nil, err
	}
	nn.Train(m, true)
	t := &Train{Model: m}
	if t.Opt, err = sgd(nn.Trainable(m)); err != nil {
		return nil, err
	}
	if t.X, err = images(batch, size); err != nil {
		return nil, err
	}
	if t.Y, err = labels(batch, classes); err != nil {
		return nil, err
	}
	return t, nil
}

// Step runs one training step and returns the loss.
func (t *Train) Step() (float64, error) {
	s := torch.NewScope()
	defer s.Close()
	logits, err := t.Model.Forward(t.X)
	if err != nil {
		return 0, err
	}
	loss, err := torch.CrossEntropy(logits, t.Y, torch.LossOptions{})
	if err != nil {
		return 0, err
	}
	v, err := loss.Item()
	if err != nil {
		return 0, err
	}
	if err := loss.Backward(); err != nil {
		return 0, err
	}
	if err := t.Opt.Step(); err != nil {
		return 0, err
	}
	return v, t.Opt.ZeroGrad()
}

// Infer is eval-mode inference of a torchvision ResNet without autograd,
// on one fixed batch; with Folded set it runs the backbone with its
// BatchNorm layers folded into the convolutions (models.Fuse) instead.
type Infer struct {
	Model  *models.ResNet
	X      *torch.Tensor
	Folded *models.Fused
	// Mkldnn, when set, runs instead (see MkldnnBackbone).
	Mkldnn *MkldnnBackbone
}

// NewInfer builds arch with classes outputs in evaluation mode and a batch
// of batch random images of size×size pixels.
func NewInfer(arch string, batch, size int, classes int64) (*Infer, error) {
	m, err := models.New(arch, classes)
	if err != nil {
		return nil, err
	}
	nn.Train(m, false)
	if err := nn.Freeze(m); err != nil {
		return nil, err
	}
	x, err := images(batch, size)
	if err != nil {
		return nil, err
	}
	return &Infer{Model: m, X: x}, nil
}

// Fold makes Step run the folded backbone in memory format f.
func (in *Infer) Fold(f torch.MemoryFormat) error {
	fb, err := models.Fuse(in.Model, f)
	if err != nil {
		return err
	}
	in.Folded = fb
	return nil
}

// Step computes the logits of the batch.
func (in *Infer) Step() error {
	s := torch.NewScope()
	defer s.Close()
	return torch.NoGrad(func() error {
		var f *torch.Tensor
		var err error
		switch {
		case in.Mkldnn != nil:
			f, err = in.Mkldnn.Pooled(in.X)
		case in.Folded != nil:
			var fmap *torch.Tensor
			if fmap, err = in.Folded.Layer4(in.X); err == nil {
				f, err = finetune.Pool("avg", fmap)
			}
		default:
			_, err = in.Model.Forward(in.X)
			return err
		}
		if err != nil {
			return err
		}
		_, err = in.Model.FC.Forward(f)
		return err
	})
}

// Frozen is an epoch of fine-tuning a linear head on a frozen backbone
// whose BatchNorm layers keep their stored statistics, over a fixed set
// of random images, in shuffled batches: the first stage of finetune's
// default recipe (freeze: all, train.batchnorm: frozen), with the head
// reduced to the linear layer a plain PyTorch loop trains (no dropout).
//
// EpochCached is finetune's default path (train.cache_features: auto):
// features computed once by the folded backbone (Cache), then each epoch
// trains the head on them. EpochOff is train.cache_features: off: the
// folded backbone runs on every batch of every epoch, without autograd.
type Frozen struct {
	M      *finetune.Model
	Opt    *optim.SGD
	Images *torch.Tensor // (N, 3, size, size)
	Labels *torch.Tensor // (N)
	Batch  int
	Feats  *torch.Tensor // (N, C) once Cache ran
	// Mkldnn, when set, is the backbone EpochMkldnn runs (see
	// MkldnnBackbone).
	Mkldnn *MkldnnBackbone
	rng    *rand.Rand
}

// NewFrozen builds arch with a linear head of classes outputs for images
// of size pixels, its whole backbone frozen with stored BatchNorm
// statistics, in training mode, and n random images.
func NewFrozen(arch string, n, size, batch int, classes int64) (*Frozen, error) {
	m, err := finetune.NewModel(arch, finetune.HeadConfig{Pooling: "avg", Hidden: []int{}}, classes, size)
	if err != nil {
		return nil, err
	}
	if err := m.Freeze("all", "follow"); err != nil {
		return nil, err
	}
	if err := m.SetBNMode("frozen"); err != nil {
		return nil, err
	}
	m.Train(true)
	f := &Frozen{M: m, Batch: batch, rng: rand.New(rand.NewPCG(1, 2))}
	if f.Opt, err = sgd(nn.Trainable(m)); err != nil {
		return nil, err
	}
	if f.Images, err = images(n, size); err != nil {
		return nil, err
	}
	if f.Labels, err = labels(n, classes); err != nil {
		return nil, err
	}
	return f, nil
}

// UseFolded folds the backbone for memory format format, as finetune's
// trainer does for a frozen stage (Model.UseFused).
func (f *Frozen) UseFolded(format torch.MemoryFormat) error {
	return f.M.UseFused(format, torch.Float32)
}

// Cache computes the features of every image with FrozenFeatures, batch
// by batch, as the trainer does once per stage.
func (f *Frozen) Cache() error {
	f.Feats.Free()
	f.Feats = nil
	n := f.Images.Shape()[0]
	var parts []*torch.Tensor
	defer func() {
		for _, p := range parts {
			p.Free()
		}
	}()
	for i := int64(0); i < n; i += int64(f.Batch) {
		err := torch.WithScope(func() error {
			x, err := f.Images.Narrow(0, i, min(int64(f.Batch), n-i))
			if err != nil {
				return err
			}
			feats, err := f.M.FrozenFeatures(x)
			if err != nil {
				return err
			}
			parts = append(parts, feats.Keep())
			return nil
		})
		if err != nil {
			return err
		}
	}
	all, err := torch.Cat(parts, 0)
	if err != nil {
		return err
	}
	f.Feats = all.Keep()
	return nil
}

// EpochCached trains the head for an epoch on the cached features.
func (f *Frozen) EpochCached() error {
	if f.Feats == nil {
		return fmt.Errorf("bench: EpochCached before Cache")
	}
	return f.epoch(func(idx *torch.Tensor) (*torch.Tensor, error) { return f.Feats.IndexSelect(0, idx) })
}

// EpochOff trains the head for an epoch, computing each batch's features
// with FrozenFeatures.
func (f *Frozen) EpochOff() error {
	return f.epoch(func(idx *torch.Tensor) (*torch.Tensor, error) {
		x, err := f.Images.IndexSelect(0, idx)
		if err != nil {
			return nil, err
		}
		return f.M.FrozenFeatures(x)
	})
}

// UseMkldnn builds f.Mkldnn, the folded backbone in oneDNN's layout,
// unless it is built already.
func (f *Frozen) UseMkldnn() error {
	if f.Mkldnn != nil {
		return nil
	}
	rn, ok := f.M.Backbone.(*models.ResNet)
	if !ok {
		return fmt.Errorf("bench: oneDNN folding takes a ResNet, not %s", f.M.Backbone.ArchName())
	}
	var err error
	f.Mkldnn, err = FoldMkldnn(rn)
	return err
}

// EpochMkldnn trains the head for an epoch, computing each batch's
// features with f.Mkldnn: the experiment of keeping the folded backbone in
// oneDNN's layout.
func (f *Frozen) EpochMkldnn() error {
	if f.Mkldnn == nil {
		return fmt.Errorf("bench: EpochMkldnn before UseMkldnn")
	}
	return f.epoch(func(idx *torch.Tensor) (*torch.Tensor, error) {
		x, err := f.Images.IndexSelect(0, idx)
		if err != nil {
			return nil, err
		}
		return f.Mkldnn.Pooled(x)
	})
}

func (f *Frozen) epoch(features func(idx *torch.Tensor) (*torch.Tensor, error)) error {
	n := int(f.Images.Shape()[0])
	order := f.rng.Perm(n)
	f.M.Train(true)
	for i := 0; i < n; i += f.Batch {
		idx := make([]int64, 0, f.Batch)
		for _, k := range order[i:min(i+f.Batch, n)] {
			idx = append(idx, int64(k))
		}
		err := torch.WithScope(func() error {
			it, err := torch.FromSlice(idx)
			if err != nil {
				return err
			}
			feats, err := features(it)
			if err != nil {
				return err
			}
			y, err := f.Labels.IndexSelect(0, it)
			if err != nil {
				return err
			}
			logits, err := f.M.Head.Forward(feats)
			if err != nil {
				return err
			}
			loss, err := torch.CrossEntropy(logits, y, torch.LossOptions{})
			if err != nil {
				return err
			}
			if _, err := loss.Item(); err != nil {
				return err
			}
			if err := loss.Backward(); err != nil {
				return err
			}
			if err := f.Opt.Step(); err != nil {
				return err
			}
			return f.Opt.ZeroGrad()
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// RSS is the process's resident memory from /proc/self/status, in bytes:
// now (VmRSS) and at its peak (VmHWM).
type RSS struct {
	Now, Peak int64
}

// ReadRSS reads the process's RSS.
func ReadRSS() (RSS, error) {
	buf, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return RSS{}, err
	}
	var r RSS
	for _, line := range bytes.Split(buf, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(k) {
		case "VmRSS":
			dst = &r.Now
		case "VmHWM":
			dst = &r.Peak
		default:
			continue
		}
		kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
		if err != nil {
			return RSS{}, fmt.Errorf("/proc/self/status: %q: %w", line, err)
		}
		*dst = kb << 10
	}
	return r, nil
}
