package finetune

import (
	"fmt"
	"strings"

	"github.com/finetune-go/finetune/internal/printable"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/data"
)

// Inspection describes the model a configuration trains, before any
// training: output shapes, parameters and BatchNorm modes per stage of
// the recipe, the head's cost and the checkpoint sizes. It is computed on
// a model with fresh weights: none of it depends on their values.
type Inspection struct {
	Arch       string `json:"arch"`
	ImageSize  int    `json:"image_size"`
	NumClasses int    `json:"num_classes"`
	Pooling    string `json:"pooling"`
	// Groups are the model's parts in forward order: the backbone's freeze
	// groups (a ResNet's stem and layer1..layer4; Model.FreezePoints), the
	// pooling and the head.
	Groups []GroupInfo `json:"groups"`
	Total  int64       `json:"total"`
	// HeadInputs is the width of the head's input.
	HeadInputs int64 `json:"head_inputs"`
	HeadParams int64 `json:"head_params"`
	// Stages is the model as each stage of the recipe trains it.
	Stages []StageInfo `json:"stages"`
	// FullBytes and DeltaBytes are the sizes of a full and a delta
	// checkpoint's tensors after the whole recipe; the files add a few KiB
	// of metadata.
	FullBytes  int64 `json:"full_bytes"`
	DeltaBytes int64 `json:"delta_bytes"`
	// Warnings are problems visible before training, such as a head
	// large enough to memorise a small dataset.
	Warnings []string `json:"warnings,omitempty"`
}

// GroupInfo is one part of the model.
type GroupInfo struct {
	Name string `json:"name"`
	// Shape is the part's output for one image: C×H×W or a feature width.
	Shape      []int64 `json:"shape"`
	Params     int64   `json:"params"`
	BatchNorms int     `json:"batchnorms"`
}

// StageInfo is the model while one stage of the recipe trains.
type StageInfo struct {
	Stage `json:"stage"`
	// Trainable counts the parameters that train, in total and per group
	// (indexed as Inspection.Groups).
	Trainable      int64   `json:"trainable"`
	GroupTrainable []int64 `json:"group_trainable"`
	// BatchStats counts, per group, the BatchNorm layers that normalise
	// with the batch's statistics.
	BatchStats []int            `json:"batch_stats"`
	BatchNorms []BatchNormState `json:"batchnorms"`
}

// BatchNormState is one BatchNorm layer's behaviour while a stage
// trains.
type BatchNormState struct {
	Path  string `json:"path"`
	Group string `json:"group"`
	// Mode is "train" (batch statistics, running ones updated), "frozen"
	// (stored statistics, never updated) or "legacy" (batch statistics,
	// stored ones neither updated nor used until inference).
	Mode string `json:"mode"`
	// Affine reports whether its scale and shift train.
	Affine bool `json:"affine_trains"`
}

// groupNames are the groups of m's Inspection in forward order.
func groupNames(m *Model) []string {
	var out []string
	for _, g := range m.groups {
		if g.Name != "pool" {
			out = append(out, g.Name)
		}
	}
	return append(out, "pool", "head")
}

// groupOf returns the group of a parameter or module path of m.
func groupOf(m *Model, path string) string {
	if strings.HasPrefix(path, "head") {
		return "head"
	}
	rest := strings.TrimPrefix(path, "backbone.")
	for _, g := range m.groups {
		for _, p := range g.Value {
			if p == rest || strings.HasPrefix(p, rest+".") {
				return g.Name
			}
		}
	}
	return m.groups[0].Name
}

func (in *Inspection) groupIndex(name string) int {
	for i, g := range in.Groups {
		if g.Name == name {
			return i
		}
	}
	return -1
}

// Inspect builds the model of cfg for numClasses classes (with fresh
// weights: no pretrained file is read), runs one image of the configured
// size through it and applies each stage's freezing and the BatchNorm
// policy as training would.
func Inspect(cfg Config, numClasses int) (*Inspection, error) {
	torch.ManualSeed(cfg.Seed)
	m, err := NewModel(cfg.Model.Arch, cfg.Model.Head, int64(numClasses), cfg.Data.ImageSize)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	defer m.Close()
	if err := m.SetBNMode(ProvisionalBN(cfg)); err != nil {
		return nil, err
	}
	in := &Inspection{Arch: cfg.Model.Arch, ImageSize: cfg.Data.ImageSize, NumClasses: numClasses, Pooling: m.Pooling}
	for _, g := range groupNames(m) {
		in.Groups = append(in.Groups, GroupInfo{Name: g})
	}
	if err := in.shapes(m); err != nil {
		return nil, err
	}
	for _, p := range nn.NamedParameters(m) {
		in.Groups[in.groupIndex(groupOf(m, p.Name))].Params += p.Value.Numel()
	}
	for _, bn := range batchNorms(m) {
		in.Groups[in.groupIndex(groupOf(m, bn.Name))].BatchNorms++
	}
	in.Total, _ = nn.CountParameters(m)
	in.HeadParams, _ = nn.CountParameters(m.Head)
	in.HeadInputs = pooledWidth(m.Pooling, m.FeatureShape[0], m.FeatureShape[1], m.FeatureShape[2])
	trained := map[string]bool{}
	for i, st := range cfg.Stages {
		st.Freeze = m.familyPoint(st.Freeze) // as the plan records it
		if err := m.Freeze(st.Freeze, cfg.Train.BNAffine); err != nil {
			return nil, fmt.Errorf("stages[%d].freeze: %w", i, err)
		}
		m.Train(true)
		in.Stages = append(in.Stages, in.stageInfo(m, st, trained))
	}
	if in.FullBytes, in.DeltaBytes, err = CheckpointSizes(m, trained); err != nil {
		return nil, err
	}
	if in.HeadParams > 10_000_000 {
		in.Warnings = append(in.Warnings, fmt.Sprintf("the head has %s parameters (%s as float32, %s with Adam's two moments): "+
			"a head this large memorises a small dataset; model.head.pooling: avg and one small layer is the usual cure",
			nn.Thousands(in.HeadParams), nn.Bytes(in.HeadParams*4), nn.Bytes(in.HeadParams*12)))
	}
	if cfg.Train.BatchNorm == "legacy" {
		in.Warnings = append(in.Warnings, "train.batchnorm: legacy normalises with batch statistics in training and with "+
			"stored ones at inference, which the training never updated: validation will be much worse than training")
	}
	return in, nil
}

// shapes runs one black image through m in evaluation mode and records
// each group's output shape.
func (in *Inspection) shapes(m *Model) error {
	s := torch.NewScope()
	defer s.Close()
	m.Train(false)
	defer m.Train(true)
	x, err := torch.Zeros([]int64{1, 3, int64(in.ImageSize), int64(in.ImageSize)})
	if err != nil {
		return err
	}
	return torch.NoGrad(func() error {
		names := groupNames(m)
		f, err := m.Backbone.Features(x, names[:len(names)-1]...)
		if err != nil {
			return fmt.Errorf("model at image size %d: %w", in.ImageSize, err)
		}
		pooled := f["pool"]
		if m.resnet != nil {
			if pooled, err = Pool(m.Pooling, f["layer4"]); err != nil {
				return err
			}
		}
		logits, err := m.Head.Forward(pooled)
		if err != nil {
			return fmt.Errorf("head: %w", err)
		}
		f["pool"], f["head"] = pooled, logits
		for i, g := range names {
			in.Groups[i].Shape = f[g].Shape()[1:]
		}
		return nil
	})
}

func batchNorms(m *Model) []nn.Named[*nn.BatchNorm] {
	var out []nn.Named[*nn.BatchNorm]
	_ = nn.Walk(m, func(path string, x nn.Module) error {
		if bn, ok := x.(*nn.BatchNorm); ok {
			out = append(out, nn.Named[*nn.BatchNorm]{Name: path, Value: bn})
		}
		return nil
	})
	return out
}

// stageInfo describes m as frozen and moded for stage st, and adds the
// parameters that train to trained.
func (in *Inspection) stageInfo(m *Model, st Stage, trained map[string]bool) StageInfo {
	si := StageInfo{Stage: st, GroupTrainable: make([]int64, len(in.Groups)), BatchStats: make([]int, len(in.Groups))}
	for _, p := range nn.Trainable(m) {
		trained[p.Name] = true
		n := p.Value.Numel()
		si.Trainable += n
		si.GroupTrainable[in.groupIndex(groupOf(m, p.Name))] += n
	}
	for _, bn := range batchNorms(m) {
		b := bn.Value
		s := BatchNormState{Path: bn.Name, Group: groupOf(m, bn.Name), Mode: "frozen"}
		switch {
		case b.Training() && b.Config.TrackRunningStats:
			s.Mode = "train"
		case b.Training():
			s.Mode = "legacy"
		}
		for _, p := range b.Parameters() {
			s.Affine = s.Affine || p.Value.RequiresGrad()
		}
		if s.Mode != "frozen" {
			si.BatchStats[in.groupIndex(s.Group)]++
		}
		si.BatchNorms = append(si.BatchNorms, s)
	}
	return si
}

// DataInfo is what a configuration's data folders hold.
type DataInfo struct {
	Classes []string `json:"classes"`
	// Train and Val count the images each epoch trains and validates on
	// (fold 1's under cross-validation); Test those of data.test.
	Train int `json:"train"`
	Val   int `json:"val"`
	Test  int `json:"test"`
	// StepsPerEpoch is the number of training steps of an epoch, as a
	// run counts them.
	StepsPerEpoch int `json:"steps_per_epoch"`
}

// InspectData lists cfg's data folders (without decoding any image),
// splits off validation as a run does and counts the steps of an epoch.
func InspectData(cfg Config) (_ *DataInfo, err error) {
	defer printable.Escape(&err)
	d, err := OpenData(cfg)
	if err != nil {
		return nil, err
	}
	info := &DataInfo{Classes: d.Classes, Train: len(d.Train), Val: len(d.Val)}
	set, train := d.TrainSet, d.Train
	if cfg.CV.Folds > 0 {
		all := d.TrainSet
		if cfg.Data.Val != "" {
			merged := *all
			merged.Samples = append(append([]data.Sample(nil), all.Samples...), d.ValSet.Samples...)
			all = &merged
		}
		folds, err := data.StratifiedKFold(all.Labels(), cfg.CV.Folds, cfg.Seed)
		if err != nil {
			return nil, fmt.Errorf("cv.folds: %w", err)
		}
		set, train = all, folds[0].Train
		info.Train, info.Val = len(folds[0].Train), len(folds[0].Val)
	}
	if d.TestSet != nil {
		info.Test = len(d.TestSet.Samples)
	}
	loader, err := d.loader(cfg, placement{}, set, train, trainLoader, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("data.train: %w", err)
	}
	defer loader.Close()
	info.StepsPerEpoch = loader.Len()
	if cfg.Train.StepsPerEpoch > 0 {
		info.StepsPerEpoch = cfg.Train.StepsPerEpoch
	}
	return info, nil
}
