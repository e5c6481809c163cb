// Package shift diagnoses how far a dataset is from the data a pretrained
// ResNet was trained on, as its BatchNorm layers see it, and turns the
// diagnosis into settings that need no tuning: whether to keep the stored
// BatchNorm statistics or re-estimate them (ChooseBN, behind
// train.batchnorm: auto) and how deep to unfreeze (SuggestFreeze).
//
// Every BatchNorm layer of a pretrained network stores the mean and
// variance of its input, per channel, over the source data. Measure runs
// the network over a sample of the new images and compares the actual
// statistics of each layer's input with the stored ones: the symmetric
// Kullback-Leibler divergence between the two Gaussians, averaged over the
// layer's channels. Small values mean the stored statistics fit the images
// (a frozen network normalises them as it was trained to); large ones mean
// they do not, and AdaBN (re-estimating the statistics on the new images)
// restores what the later layers expect.
package shift

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
)

// Layer is the shift measured at one BatchNorm layer.
type Layer struct {
	// Path is the layer's state-dict path, such as "layer2.0.downsample.1".
	Path  string `json:"path"`
	Stage string `json:"stage"`
	// Divergence is the symmetric KL divergence between the Gaussian of
	// the data's statistics and that of the stored ones, averaged over the
	// channels (see SymmetricKL).
	Divergence float64 `json:"divergence"`
}

// StageShift is a stage's shift: the mean of its layers' divergences.
type StageShift struct {
	Name       string  `json:"name"`
	Divergence float64 `json:"divergence"`
	Layers     int     `json:"layers"`
}

// Report is the shift of a dataset for one backbone.
type Report struct {
	// Images is the number of images measured.
	Images int          `json:"images"`
	Layers []Layer      `json:"layers"`
	Stages []StageShift `json:"stages"`
	// Input is the statistics of the images as the stem sees them,
	// normalised: what says whether the normalisation fits.
	Input Input `json:"input"`
}

// Input is the per-channel mean and standard deviation of normalised
// images.
type Input struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
}

// SymmetricKL returns 0.5·(KL(p‖q) + KL(q‖p)) for the univariate normals
// p = N(mean1, var1) and q = N(mean2, var2):
//
//	¼·(var1/var2 + var2/var1 − 2 + (mean1−mean2)²·(1/var1 + 1/var2))
//
// It is zero when the two are equal, grows with the square of a mean
// difference measured in standard deviations (d²/2 for equal variances)
// and, for a scale factor s between the standard deviations, as
// ¼·(s − 1/s)².
func SymmetricKL(mean1, var1, mean2, var2 float64) float64 {
	d := mean1 - mean2
	return 0.25 * (var1/var2 + var2/var1 - 2 + d*d*(1/var1+1/var2))
}

// Measure runs net over images (batches of normalised images, N×C×H×W,
// as its training saw them) in evaluation mode without autograd, up to
// maxImages images (all when maxImages <= 0), and measures the shift of
// each BatchNorm layer it finds among net's modules, whatever the
// network's family: every layer normalises with its stored statistics
// while measuring, as a frozen backbone does, so a layer's shift includes
// what earlier layers pass on. net's modules are left in their modes and
// nothing else in net changes; net must not run elsewhere meanwhile.
// Each variance has the layer's eps added, as BatchNorm adds it before
// normalising.
func Measure(ctx context.Context, net models.Network, images func(yield func(*torch.Tensor, error) bool), maxImages int) (*Report, error) {
	w, err := newWalker(net)
	if err != nil {
		return nil, err
	}
	defer w.detach()
	if err := w.stages(net); err != nil {
		return nil, err
	}
	params := nn.NamedParameters(net)
	if len(params) == 0 {
		return nil, errors.New("shift: the network has no parameters")
	}
	dev := params[0].Value.Device()
	stages := net.StageNames()
	seen := 0
	err = torch.NoGrad(func() error {
		for x, err := range images {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			n, err := w.batch(x, dev, maxImages-seen, maxImages > 0, func(x *torch.Tensor) error {
				_, err := net.Features(x, stages[len(stages)-1])
				return err
			})
			if err != nil {
				return err
			}
			if seen += n; maxImages > 0 && seen >= maxImages {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shift: %w", err)
	}
	if seen == 0 {
		return nil, errors.New("shift: no images to measure")
	}
	return w.report(seen)
}

// moments accumulates per-channel means and sums of squared deviations
// over batches (Chan et al.'s parallel update).
type moments struct {
	n        float64
	mean, m2 []float64
}

func (m *moments) add(n float64, mean, variance []float64) {
	if m.n == 0 {
		m.n, m.mean, m.m2 = n, mean, make([]float64, len(variance))
		for c, v := range variance {
			m.m2[c] = v * n
		}
		return
	}
	total := m.n + n
	for c := range m.mean {
		d := mean[c] - m.mean[c]
		m.mean[c] += d * n / total
		m.m2[c] += variance[c]*n + d*d*m.n*n/total
	}
	m.n = total
}

// record adds the statistics of x (N×C×H×W) over N, H and W, computed by
// BatchNorm's own kernel: Var over those dimensions of a channels-last
// map took most of a measurement's time.
func (m *moments) record(x *torch.Tensor) error {
	s := torch.NewScope()
	defer s.Close()
	mean, variance, err := torch.BatchNormStats(x)
	if err != nil {
		return err
	}
	mv, err := mean.Float64s()
	if err != nil {
		return err
	}
	vv, err := variance.Float64s()
	if err != nil {
		return err
	}
	shape := x.Shape()
	m.add(float64(shape[0]*shape[2]*shape[3]), mv, vv)
	return nil
}

// bnLayer is a BatchNorm layer of the network with its path and what has
// been measured at its input.
type bnLayer struct {
	path  string
	stage string
	bn    *nn.BatchNorm
	acc   moments
}

// walker measures the input of every BatchNorm layer of a network as the
// network's own forward pass runs them (nn.BatchNorm.Observe), with the
// network in evaluation mode.
type walker struct {
	layers []*bnLayer
	input  moments
	// modules and was are the network's modules and their modes before
	// the measurement.
	modules []*nn.ModuleBase
	was     []bool
	// stageNames are the network's stages, in depth order.
	stageNames []string
}

func newWalker(net nn.Module) (*walker, error) {
	w := &walker{}
	err := nn.Walk(net, func(path string, m nn.Module) error {
		w.modules = append(w.modules, m.Base())
		w.was = append(w.was, m.Base().Training())
		bn, ok := m.(*nn.BatchNorm)
		if !ok {
			return nil
		}
		if bn.Buffer("running_mean") == nil || bn.Buffer("running_var") == nil {
			return fmt.Errorf("shift: BatchNorm %s stores no running statistics", path)
		}
		w.layers = append(w.layers, &bnLayer{path: path, bn: bn})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, l := range w.layers {
		l.bn.Observe = l.acc.record
	}
	nn.Train(net, false)
	return w, nil
}

// detach stops observing and puts the modules' modes back.
func (w *walker) detach() {
	for _, l := range w.layers {
		l.bn.Observe = nil
	}
	for i, m := range w.modules {
		m.SetTraining(w.was[i])
	}
}

// batch measures x, or its first limit images when limited, through
// forward, and returns the number of images used.
func (w *walker) batch(x *torch.Tensor, dev torch.Device, limit int, limited bool, forward func(*torch.Tensor) error) (int, error) {
	s := torch.NewScope()
	defer s.Close()
	if x.Dim() != 4 {
		return 0, fmt.Errorf("images: want N×C×H×W batches, got shape %v", x.Shape())
	}
	n := x.Shape()[0]
	if limited && int64(limit) < n {
		n = int64(limit)
	}
	x, err := x.Narrow(0, 0, n)
	if err != nil {
		return 0, err
	}
	if x, err = x.ToDevice(dev); err != nil {
		return 0, err
	}
	if err := w.input.record(x); err != nil {
		return 0, err
	}
	return int(n), forward(x)
}

func (w *walker) report(images int) (*Report, error) {
	r := &Report{Images: images}
	for c, m := range w.input.mean {
		r.Input.Mean = append(r.Input.Mean, m)
		r.Input.Std = append(r.Input.Std, math.Sqrt(w.input.m2[c]/w.input.n))
	}
	for _, l := range w.layers {
		runMean, err := l.bn.Buffer("running_mean").Float64s()
		if err != nil {
			return nil, fmt.Errorf("shift: %s: %w", l.path, err)
		}
		runVar, err := l.bn.Buffer("running_var").Float64s()
		if err != nil {
			return nil, fmt.Errorf("shift: %s: %w", l.path, err)
		}
		if slices.ContainsFunc(runVar, func(v float64) bool { return v < 0 }) {
			return nil, fmt.Errorf("shift: %s: running_var has negative values: the weights are corrupt", l.path)
		}
		eps := l.bn.Config.Eps
		sum := 0.0
		for c, m := range l.acc.mean {
			sum += SymmetricKL(m, l.acc.m2[c]/l.acc.n+eps, runMean[c], runVar[c]+eps)
		}
		div := sum / float64(len(runMean))
		if math.IsNaN(div) || math.IsInf(div, 0) {
			// A negative stored variance, or images that overflow, would
			// otherwise turn into advice from a NaN.
			return nil, fmt.Errorf("shift: %s: the divergence from the stored statistics is %v: its running_var or the images' activations are not usable", l.path, div)
		}
		r.Layers = append(r.Layers, Layer{Path: l.path, Stage: l.stage, Divergence: div})
	}
	for _, name := range w.stageNames {
		st := StageShift{Name: name}
		for _, l := range r.Layers {
			if l.Stage == name {
				st.Divergence += l.Divergence
				st.Layers++
			}
		}
		if st.Layers == 0 {
			continue // a ResNet's pool, a ViT's blocks: no BatchNorm to measure
		}
		st.Divergence /= float64(st.Layers)
		r.Stages = append(r.Stages, st)
	}
	return r, nil
}

// stages assigns each BatchNorm layer to the stage of net that holds
// its parameters (models.StageParameters): the stages a Report
// summarises are the network's own.
func (w *walker) stages(net models.Network) error {
	groups, err := models.StageParameters(net)
	if err != nil {
		return fmt.Errorf("shift: %w", err)
	}
	stageOf := map[string]string{}
	for _, g := range groups {
		w.stageNames = append(w.stageNames, g.Name)
		for _, p := range g.Value {
			stageOf[p] = g.Name
		}
	}
	for _, l := range w.layers {
		// Every BatchNorm of torchvision's networks is affine; its
		// weight names the stage.
		st, ok := stageOf[l.path+".weight"]
		if !ok {
			return fmt.Errorf("shift: BatchNorm %s belongs to no stage of the network", l.path)
		}
		l.stage = st
	}
	return nil
}
