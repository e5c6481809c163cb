package finetune

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
)

// Model is a pretrained backbone with a new head. Its state-dict keys are
// "backbone." plus torchvision's keys and "head." plus the head's.
//
// The backbone is any network of the zoo (models.Networks). A ResNet's
// head sees layer4's map pooled as Pooling says, and its frozen prefix
// can run fused (UseFused) with its activations cached; the other
// families' head sees their own pooled features (their "pool" stage, as
// torchvision's classifier does) and their frozen part runs unfused,
// without autograd since none of its parameters requires a gradient.
//
// The mode of its BatchNorm layers is a policy of its own (BNMode), which
// Train re-applies, so switching the model between training and
// evaluation never silently undoes it.
//
// A Model holds native memory (its tensors, on the CPU or a GPU) that Go's
// garbage collector does not see: whoever receives one (NewModel,
// LoadCheckpoint, Result.Model) owns it and calls Close when done.
type Model struct {
	nn.ModuleBase
	Backbone models.Network
	Head     *nn.Sequential
	Pooling  string
	// FeatureShape is the shape of one pooled feature vector's source:
	// (C, h, w) of a ResNet's layer4 for the configured image size,
	// (C, 1, 1) of another family's pooled features.
	FeatureShape [3]int64
	bnMode       string
	// fused, when set, computes the backbone's fixed prefix (UseFused).
	fused *models.Fused
	// resnet is Backbone when it is a ResNet, whose fast paths (the fused
	// prefix, the activation cache, Grad-CAM on layer4) follow its layers.
	resnet *models.ResNet
	// groups are the backbone's freeze groups in depth order: its stages
	// with parameters (models.StageParameters), by state-dict name.
	groups []nn.Named[[]string]
	// conv is the backbone's first convolution, whose weight tells the
	// model's device and memory format.
	conv *nn.Conv2d
}

// Feature widths of a head's input.
func pooledWidth(pooling string, c, h, w int64) int64 {
	switch pooling {
	case "avgmax":
		return 2 * c
	case "flatten":
		return c * h * w
	}
	return c
}

// NewModel builds arch without its classifier and a head of cfg for
// numClasses, for images of imageSize pixels.
func NewModel(arch string, cfg HeadConfig, numClasses int64, imageSize int) (_ *Model, err error) {
	bb, err := models.Build(arch, 0)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			nn.Free(bb)
		}
	}()
	m := &Model{Backbone: bb, Pooling: cfg.Pooling, bnMode: "train"}
	if err := m.describe(cfg.Pooling, imageSize); err != nil {
		return nil, err
	}
	fs := m.FeatureShape
	m.Head, err = NewHead(cfg, pooledWidth(cfg.Pooling, fs[0], fs[1], fs[2]), numClasses)
	if err != nil {
		return nil, err
	}
	if err := m.RegisterModule("backbone", bb); err != nil {
		return nil, err
	}
	if err := m.RegisterModule("head", m.Head); err != nil {
		return nil, err
	}
	m.SetTraining(true)
	return m, nil
}

// describe fills in what m's engine needs to know of its backbone: the
// feature shape, the ResNet fast paths, the freeze groups, the first
// convolution; it refuses a pooling or image size the family cannot take.
func (m *Model) describe(pooling string, imageSize int) error {
	bb := m.Backbone
	switch b := bb.(type) {
	case *models.ResNet:
		m.resnet = b
		side := layer4Side(int64(imageSize))
		m.FeatureShape = [3]int64{bb.FeatureDim(), side, side}
	case *models.ViT:
		if imageSize != models.ViTImageSize {
			return fmt.Errorf("data.image_size: %s takes %d×%d images (its position embedding has one entry per patch of them), got %d",
				bb.ArchName(), models.ViTImageSize, models.ViTImageSize, imageSize)
		}
	}
	if m.resnet == nil {
		if pooling != "avg" {
			return fmt.Errorf("model.head.pooling: %s pools a ResNet's layer4; %s pools its features as torchvision does: use avg", pooling, bb.ArchName())
		}
		m.FeatureShape = [3]int64{bb.FeatureDim(), 1, 1}
	}
	stages, err := models.StageParameters(bb)
	if err != nil {
		return err
	}
	for _, g := range stages {
		if len(g.Value) > 0 {
			m.groups = append(m.groups, g)
		}
	}
	_ = nn.Walk(bb, func(_ string, x nn.Module) error {
		if c, ok := x.(*nn.Conv2d); ok && m.conv == nil {
			m.conv = c
		}
		return nil
	})
	if m.conv == nil {
		return fmt.Errorf("model: %s has no convolution", bb.ArchName())
	}
	return nil
}

// layer4Side is the side of a ResNet's last feature map for square inputs:
// five halvings with PyTorch's rounding (stride-2 convolutions and pooling
// with padding).
func layer4Side(s int64) int64 {
	for range 5 {
		s = (s-1)/2 + 1
	}
	return s
}

// NewHead builds the classifier on features of width in: before each
// linear layer a Dropout (when dropout > 0), after each hidden one an
// optional BatchNorm1d and a ReLU.
func NewHead(cfg HeadConfig, in, numClasses int64) (*nn.Sequential, error) {
	head := nn.NewSequential()
	add := func(out int64, last bool) error {
		if cfg.Dropout > 0 {
			d, err := nn.NewDropout(cfg.Dropout)
			if err != nil {
				return err
			}
			head.Append(d)
		}
		lin, err := nn.NewLinear(in, out, true)
		if err != nil {
			return err
		}
		head.Append(lin)
		if last {
			return nil
		}
		if cfg.BatchNorm {
			bn, err := nn.NewBatchNorm1d(nn.DefaultBatchNorm(out))
			if err != nil {
				return err
			}
			head.Append(bn)
		}
		head.Append(nn.NewReLU(true))
		in = out
		return nil
	}
	for _, h := range cfg.Hidden {
		if err := add(int64(h), false); err != nil {
			return nil, fmt.Errorf("head: %w", err)
		}
	}
	if err := add(numClasses, true); err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	return head, nil
}

// HeadSize returns the number of parameters of the head cfg would build,
// without building it.
func HeadSize(cfg HeadConfig, in, numClasses int64) int64 {
	var n int64
	for _, h := range cfg.Hidden {
		n += in*int64(h) + int64(h)
		if cfg.BatchNorm {
			n += 2 * int64(h)
		}
		in = int64(h)
	}
	return n + in*numClasses + numClasses
}

// Pool turns layer4's map (N, C, h, w) into the head's input.
func Pool(pooling string, fmap *torch.Tensor) (*torch.Tensor, error) {
	switch pooling {
	case "flatten":
		return fmap.Flatten(1, -1)
	case "max":
		v, idx, err := torch.AdaptiveMaxPool2d(fmap, 1, 1)
		if err != nil {
			return nil, err
		}
		idx.Free()
		return v.Flatten(1, -1)
	case "avgmax":
		a, err := Pool("avg", fmap)
		if err != nil {
			return nil, err
		}
		m, err := Pool("max", fmap)
		if err != nil {
			return nil, err
		}
		return torch.Cat([]*torch.Tensor{a, m}, 1)
	}
	a, err := torch.AdaptiveAvgPool2d(fmap, 1, 1)
	if err != nil {
		return nil, err
	}
	return a.Flatten(1, -1)
}

// placement returns the device of m's parameters and the memory format
// of its convolutions.
func (m *Model) placement() (torch.Device, torch.MemoryFormat) {
	w := m.conv.Parameter("weight")
	if cl, err := w.IsContiguous(torch.ChannelsLast); err == nil && cl {
		if plain, err := w.IsContiguous(torch.ContiguousFormat); err == nil && !plain {
			return w.Device(), torch.ChannelsLast
		}
	}
	return w.Device(), torch.ContiguousFormat
}

// checkInput refuses images x that are not float32 on m's device in m's
// memory format: every batch of the engine reaches the model through one
// place (placement.input), which moves it there; a path that skips it
// fails here, on the CPU too (a channels-last model), instead of on a GPU
// only. Images stay float32 up to the model: a fused copy in bfloat16
// casts them at its entry (models.Fused.Through), the layers that train
// take them as they are.
func (m *Model) checkInput(x *torch.Tensor) error {
	dev, format := m.placement()
	if got := x.Device(); got.Type != dev.Type || dev.Type != torch.DeviceCPU && got.Index != dev.Index {
		return fmt.Errorf("model: images on %v, the model on %v", got, dev)
	}
	if x.DType() != torch.Float32 {
		return fmt.Errorf("model: images of type %v, not float32", x.DType())
	}
	if format == torch.ChannelsLast {
		if ok, err := x.IsContiguous(torch.ChannelsLast); err != nil || !ok {
			return fmt.Errorf("model: images not in the model's channels-last layout")
		}
	}
	return nil
}

// backboneFeatures runs the backbone on images x to what the head's
// input is made of: a ResNet's layer4, another family's pooled features.
func (m *Model) backboneFeatures(x *torch.Tensor) (*torch.Tensor, error) {
	if err := m.checkInput(x); err != nil {
		return nil, err
	}
	stage := "pool"
	if m.resnet != nil {
		stage = "layer4"
	}
	f, err := m.Backbone.Features(x, stage)
	if err != nil {
		return nil, err
	}
	return f[stage], nil
}

// Features returns the head's input for images x, which must be on the
// model's device in its memory format.
func (m *Model) Features(x *torch.Tensor) (*torch.Tensor, error) {
	f, err := m.backboneFeatures(x)
	if err != nil || m.resnet == nil {
		return f, err
	}
	return Pool(m.Pooling, f)
}

// FrozenFeatures returns the head's input for images x without autograd,
// through the fused backbone or prefix when one is set (see UseFused).
func (m *Model) FrozenFeatures(x *torch.Tensor) (*torch.Tensor, error) {
	var f *torch.Tensor
	err := torch.NoGrad(func() error {
		var err error
		f, err = m.TrainFeatures(x)
		return err
	})
	return f, err
}

// TrainFeatures returns the head's input for images x for a training
// step: the fused part of the backbone, when one is set (see UseFused),
// runs without autograd in its memory format, and the layers after it
// run as they are, recording for backward; without a fused part it is
// Features.
func (m *Model) TrainFeatures(x *torch.Tensor) (*torch.Tensor, error) {
	if m.fused == nil {
		return m.Features(x)
	}
	h, err := m.PrefixActivations(x)
	if err != nil {
		return nil, err
	}
	return m.TrainFromPrefix(h)
}

// PrefixActivations returns the output of the backbone's fused prefix
// (see UseFused) for images x, without autograd, in the model's memory
// format: what TrainFromPrefix continues from, and what a stage that
// trains the layers after the prefix caches (PlanStage.ActivationViews).
// It fails without a fused prefix.
func (m *Model) PrefixActivations(x *torch.Tensor) (*torch.Tensor, error) {
	if m.fused == nil {
		return nil, errors.New("model: no fused prefix to compute activations with (UseFused)")
	}
	if err := m.checkInput(x); err != nil {
		return nil, err
	}
	h, err := m.fused.Through(x, m.fused.Depth)
	if err != nil {
		return nil, err
	}
	// The layers that train compute in the model's own memory format:
	// with contiguous weights, libtorch 1.13 runs layer4's 1×1
	// convolutions through its im2col kernels, which copy a channels-last
	// input to contiguous and back in every forward and backward (15
	// copies a step for ResNet50's layer4, about a tenth more CPU); one
	// conversion of the prefix's map costs less.
	if _, format := m.placement(); format != m.fused.Format && m.fused.Depth < len(m.resnet.Layer) {
		return h.ContiguousAs(format)
	}
	return h, nil
}

// TrainFromPrefix returns the head's input for the fused prefix's
// activations h (PrefixActivations), which must be on the model's device
// in its memory format: the layers after the prefix run as they are,
// recording for backward.
func (m *Model) TrainFromPrefix(h *torch.Tensor) (*torch.Tensor, error) {
	if m.fused == nil {
		return nil, errors.New("model: no fused prefix whose activations to continue from (UseFused)")
	}
	if err := m.checkInput(h); err != nil {
		return nil, err
	}
	var err error
	for i := m.fused.Depth; i < len(m.resnet.Layer); i++ {
		if h, err = m.resnet.Layer[i].Forward(h); err != nil {
			return nil, fmt.Errorf("model: layer%d: %w", i+1, err)
		}
	}
	return Pool(m.Pooling, h)
}

// prefixShape returns the shape of one image's activations after the
// backbone's first n groups (stem, layer1..layer3; backboneGroups), for
// square images of side side: a ResNet's channels double from layer to
// layer up to FeatureDim, its side halves (PyTorch's rounding) twice in
// the stem and once in each of layer2..layer4.
func (m *Model) prefixShape(n int, side int64) [3]int64 {
	halvings := max(2, n)
	for range halvings {
		side = (side-1)/2 + 1
	}
	c := int64(64)
	if n >= 2 {
		c = m.resnet.FeatureDim() >> (5 - n)
	}
	return [3]int64{c, side, side}
}

// UseFused makes FrozenFeatures and TrainFeatures run the backbone's
// fixed prefix (FixedPrefix: the stem and the layers after it that are
// frozen with BatchNorm on stored statistics) through a copy with each
// BatchNorm layer fused into the convolution before it
// (models.FusePrefix), in memory format format and type dtype, without
// autograd. The copy is taken, and its weights cast to dtype, now, once:
// call it again after the prefix's weights or statistics change. Without
// a fixed prefix it does nothing; StopFused drops the copy.
func (m *Model) UseFused(format torch.MemoryFormat, dtype torch.DType) error {
	m.StopFused()
	n := m.FixedPrefix()
	if n == 0 {
		return nil
	}
	f, err := fuse(m.resnet, format, dtype, n-1)
	if err != nil {
		return err
	}
	m.fused = f
	return nil
}

// fuse is models.FusePrefix with the weights cast to dtype.
func fuse(b *models.ResNet, format torch.MemoryFormat, dtype torch.DType, depth int) (*models.Fused, error) {
	f, err := models.FusePrefix(b, format, depth)
	if err != nil {
		return nil, err
	}
	if err := f.Cast(dtype); err != nil {
		f.Free()
		return nil, err
	}
	return f, nil
}

// useFusedForEval makes FrozenFeatures run the whole backbone through a
// fused copy in format and dtype until the returned restore function puts
// back the copy set before, if any. In evaluation mode every BatchNorm
// layer normalises with its stored statistics, whatever the model's
// BatchNorm policy, so the whole backbone is a fixed function of its
// input there: an evaluation pass (validation, test) runs it as fast as a
// frozen stage's features. The caller keeps the model in evaluation mode
// and its weights unchanged until restore.
func (m *Model) useFusedForEval(format torch.MemoryFormat, dtype torch.DType) (restore func(), err error) {
	if m.resnet == nil {
		return func() {}, nil // only a ResNet fuses
	}
	f, err := fuse(m.resnet, format, dtype, 4)
	if err != nil {
		return nil, err
	}
	prev := m.fused
	m.fused = f
	return func() {
		f.Free()
		m.fused = prev
	}, nil
}

// StopFused releases the fused copy, if any.
func (m *Model) StopFused() {
	if m.fused != nil {
		m.fused.Free()
		m.fused = nil
	}
}

// Close releases the model's native memory: parameters, buffers and the
// fused copy of its backbone, if any. The model must not be used
// afterwards (its tensors report torch.ErrFreed); Close is idempotent.
func (m *Model) Close() {
	m.StopFused()
	nn.Free(m)
}

// FixedPrefix returns how many of the backbone's groups (BackboneGroups
// order: stem, layer1..layer4), from the stem on, compute a fixed
// function of their input, which a fused copy can compute instead:
// nothing in them trains and their BatchNorm layers use stored statistics
// (train.batchnorm frozen or adapt). It is 0 when the stem trains or
// BatchNorm uses batch statistics and 5 when the whole backbone is fixed.
// Only a ResNet fuses: for the other families it is 0.
func (m *Model) FixedPrefix() int {
	if m.resnet == nil || m.bnMode != "frozen" && m.bnMode != "adapt" {
		return 0
	}
	params := m.backboneParams()
	for n, g := range m.groups {
		for _, name := range g.Value {
			if params[name].RequiresGrad() {
				return n
			}
		}
	}
	return len(m.groups)
}

// backboneParams maps the backbone's parameters by state-dict name.
func (m *Model) backboneParams() map[string]*torch.Tensor {
	out := map[string]*torch.Tensor{}
	for _, p := range nn.NamedParameters(m.Backbone) {
		out[p.Name] = p.Value
	}
	return out
}

// Forward returns logits for images x (N, 3, H, W).
func (m *Model) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	f, err := m.Features(x)
	if err != nil {
		return nil, err
	}
	return m.Head.Forward(f)
}

// backboneBNs returns the BatchNorm layers of the backbone with their
// paths.
func (m *Model) backboneBNs() []nn.Named[*nn.BatchNorm] {
	var out []nn.Named[*nn.BatchNorm]
	_ = nn.Walk(m.Backbone, func(path string, x nn.Module) error {
		if bn, ok := x.(*nn.BatchNorm); ok {
			out = append(out, nn.Named[*nn.BatchNorm]{Name: path, Value: bn})
		}
		return nil
	})
	return out
}

// SetBNMode sets the policy of the backbone's BatchNorm layers (see
// TrainConfig.BatchNorm) and applies it for the model's current mode.
// "adapt" behaves as "frozen" here: the adaptation pass is AdaptBN. A
// backbone without BatchNorm (models.HasBatchNorm) takes only "none".
func (m *Model) SetBNMode(mode string) error {
	modes := []string{"frozen", "train", "adapt", "legacy"}
	if !models.HasBatchNorm(m.Backbone.ArchName()) {
		modes = []string{"none"}
	}
	if err := oneOf("train.batchnorm", mode, modes...); err != nil {
		return fmt.Errorf("%s: %w", m.Backbone.ArchName(), err)
	}
	m.bnMode = mode
	m.Train(m.Training())
	return nil
}

// ProvisionalBN is the BatchNorm mode of cfg before a run has seen the
// data: train.batchnorm, except that auto stands for frozen (stored
// statistics) until the run measures the shift, and for train without
// pretrained weights; for a backbone without BatchNorm it is "none".
func ProvisionalBN(cfg Config) string {
	switch {
	case !models.HasBatchNorm(cfg.Model.Arch):
		return "none"
	case cfg.Train.BatchNorm != "auto":
		return cfg.Train.BatchNorm
	case cfg.Model.Weights == "none":
		return "train"
	}
	return "frozen"
}

// BNMode returns the BatchNorm policy.
func (m *Model) BNMode() string { return m.bnMode }

// Train switches the model to training (on) or evaluation mode and then
// applies the BatchNorm policy: frozen and adapted layers stay in eval
// mode while the rest trains; legacy layers use batch statistics in
// training without updating the stored ones.
func (m *Model) Train(on bool) {
	nn.Train(m, on)
	for _, bn := range m.backboneBNs() {
		b := bn.Value
		b.Config.TrackRunningStats = true
		switch m.bnMode {
		case "frozen", "adapt":
			b.SetTraining(false)
		case "legacy":
			b.Config.TrackRunningStats = false
		}
	}
}

// Freeze makes the backbone up to and including point untrainable and the
// rest trainable (see FreezePoints); the head always trains. affine
// (follow, train or freeze) then overrides BatchNorm's scale and shift.
// No module's mode changes.
func (m *Model) Freeze(point, affine string) error {
	point = m.familyPoint(point)
	points := m.FreezePoints()
	idx := slices.Index(points, point)
	if idx < 0 {
		return fmt.Errorf("freeze: %q is not a freeze point of %s: one of %s%s", point, m.Backbone.ArchName(),
			strings.Join(points, ", "), suggest(point, points))
	}
	frozen := idx // points[1:] name groups[0:]
	if point == "all" {
		frozen = len(m.groups)
	}
	params := m.backboneParams()
	for i, g := range m.groups {
		for _, name := range g.Value {
			if err := params[name].SetRequiresGrad(i >= frozen); err != nil {
				return err
			}
		}
	}
	if err := nn.Unfreeze(m.Head); err != nil {
		return err
	}
	if affine == "follow" {
		return nil
	}
	for _, bn := range m.backboneBNs() {
		for _, p := range bn.Value.Parameters() {
			if err := p.Value.SetRequiresGrad(affine == "train"); err != nil {
				return err
			}
		}
	}
	return nil
}

// FreezePoints returns the values a stage's freeze takes for m's
// backbone, from nothing frozen to all of it: "none", the names of its
// stages with parameters but the last pooled one (a ResNet's "stem",
// "layer1".."layer4"; ConvNeXt's, Swin's, MobileNetV3's, EfficientNet's
// and RegNet's "stem", "stage1".., EfficientNet's and MobileNetV3's
// "lastconv"; ViT's "embed", "block1".."block12"), then "all". A stage's
// name freezes it and every stage before it; "all" freezes the pooled
// features' own parameters too (ConvNeXt's, Swin's and ViT's final
// LayerNorm, MobileNetV3's hidden layer).
func (m *Model) FreezePoints() []string {
	points := []string{"none"}
	for _, g := range m.groups {
		if g.Name != "pool" {
			points = append(points, g.Name)
		}
	}
	return append(points, "all")
}

// defaultFreeze is the freeze point of the default recipe's fine-tuning
// stage, a ResNet's name, which means the same on every family.
var defaultFreeze = Defaults().Stages[1].Freeze

// familyPoint returns the freeze point that point means for m: the
// default recipe's "layer2", which leaves a ResNet's last two stages
// training, is the stage before the last two of another family; every
// other point is itself.
func (m *Model) familyPoint(point string) string {
	points := m.FreezePoints()
	if point != defaultFreeze || slices.Contains(points, point) || len(points) < 5 {
		return point
	}
	return points[len(points)-4] // before the last two stages and "all"
}

// backboneGroups lists the backbone's freeze groups in depth order, each
// with the parameters it holds by state-dict name: a ResNet's stem
// (conv1, bn1) and layer1..layer4, another family's stages (see
// FreezePoints).
func (m *Model) backboneGroups() []nn.Named[[]string] { return m.groups }

// BackboneFrozen reports whether no backbone parameter trains.
func (m *Model) BackboneFrozen() bool {
	_, trainable := nn.CountParameters(m.Backbone)
	return trainable == 0
}

// ResNet returns the backbone when it is a ResNet, else nil.
func (m *Model) ResNet() *models.ResNet { return m.resnet }
