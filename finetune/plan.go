package finetune

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/finetune-go/finetune/vision/data"
	"github.com/finetune-go/finetune/vision/models"
)

// Plan is every decision a run makes before its first epoch, resolved
// once from the Config and the data and never changed afterwards: the
// loop trains exactly this. It is printed with its reasons, stored in
// every checkpoint (a resumed run trains the same plan) and returned in
// Result.
type Plan struct {
	// Device is where the run computes ("cpu", "cuda:0").
	Device string `json:"device"`
	// Precision is fp32, bf16 or fp16 (autocast).
	Precision    string `json:"precision"`
	ChannelsLast bool   `json:"channels_last"`
	// BatchNorm is the mode used: frozen, train, adapt or legacy (auto
	// resolved).
	BatchNorm string `json:"batchnorm"`
	// Stages are the stages to train, with what auto settings stood for
	// and as many epochs as fit in MaxTime.
	Stages []PlanStage `json:"stages"`
	// MaxTime is the run's time budget in seconds (train.max_time, or
	// what its auto stood for); 0: none.
	MaxTime float64 `json:"max_time,omitempty"`
	// ProbeAccuracy is the linear probe's validation accuracy, when it
	// ran.
	ProbeAccuracy *float64 `json:"probe_accuracy,omitempty"`
	// TrainSample is how many training images, a sample fixed by the
	// seed (trainSample), every epoch's train accuracy is measured on,
	// in evaluation mode.
	TrainSample int `json:"train_sample"`
	// HeadStart is how the head starts: random, or probe (the linear
	// probe's weights).
	HeadStart string `json:"head_start"`
	// Normalize is the mean and standard deviation images are
	// normalised with (data.mean and data.std, or the weights' own).
	Normalize data.Normalize `json:"normalize"`
	// EvalResize is the shorter side images are resized to before the
	// center crop at evaluation (data.resize, or what its 0 stood for).
	EvalResize int `json:"eval_resize"`
	// Weights is the pretrained weights file the backbone starts from,
	// when model.weights is a file: a delta checkpoint needs it.
	Weights *WeightsFile `json:"weights,omitempty"`
	// Data is what the run trains, validates and tests on.
	Data DataFingerprint `json:"data"`
	// Decisions lists every automatic choice with its reason, in the
	// order it was made.
	Decisions []Decision `json:"decisions"`
}

// PlanStage is a stage of the recipe as it trains.
type PlanStage struct {
	Name           string  `json:"name"`
	Epochs         int     `json:"epochs"`
	Freeze         string  `json:"freeze"`
	BackboneLRMult float64 `json:"backbone_lr_mult"`
	// LR and WeightDecay are the head's (train.lr, train.weight_decay, or
	// what search: quick chose).
	LR            float64 `json:"lr"`
	WeightDecay   float64 `json:"weight_decay"`
	StepsPerEpoch int     `json:"steps_per_epoch"`
	// Cache says which backbone features are computed once for the
	// stage: none, validation, or training and validation.
	Cache string `json:"cache"`
	// ActivationViews is how many augmented views of every training
	// image the stage computes the backbone's fixed prefix for once, and
	// keeps (train.cache_activations): pass k over the images trains on
	// view k mod ActivationViews; 0 when the prefix runs every step.
	ActivationViews int `json:"activation_views,omitempty"`
	// EstimatedSeconds is how long the stage is expected to take, all its
	// epochs, from a step timed when the plan was made (estimateStage):
	// Epochs × EpochSeconds + OnceSeconds.
	EstimatedSeconds float64 `json:"estimated_seconds"`
	// EpochSeconds is the estimated time of one epoch, validation and
	// the train accuracy included, and OnceSeconds that of what the
	// stage computes once before its first (cached features and
	// activations).
	EpochSeconds float64 `json:"epoch_seconds"`
	OnceSeconds  float64 `json:"once_seconds,omitempty"`
}

// Decision is one automatic choice of a Plan: the configuration key it
// settles, the value chosen and why.
type Decision struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
}

// WeightsFile identifies a pretrained weights file by where it was and
// what it held.
type WeightsFile struct {
	Path   string `json:"path"` // absolute
	SHA256 string `json:"sha256"`
}

// weightsFile returns the file spec names, or nil for none and named
// weights (the hub finds those).
func weightsFile(spec string) (*WeightsFile, error) {
	if spec == "none" || models.IsWeightsName(spec) {
		return nil, nil
	}
	abs, err := filepath.Abs(spec)
	if err != nil {
		return nil, fmt.Errorf("model.weights: %w", err)
	}
	sum, err := fileSHA256(abs)
	if err != nil {
		return nil, fmt.Errorf("model.weights: %w", err)
	}
	return &WeightsFile{Path: abs, SHA256: sum}, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DataFingerprint lists the files of each data folder, by configuration
// key (data.train, data.val, data.test).
type DataFingerprint map[string][]FileStamp

// FileStamp is a data file as it was: its path relative to the folder,
// size and modification time (Unix nanoseconds).
type FileStamp struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime"`
}

// fingerprint stamps every file of the datasets d reads.
func fingerprint(d *Data) (DataFingerprint, error) {
	out := DataFingerprint{}
	for _, s := range []struct {
		key string
		set *data.Dataset
	}{{"data.train", d.TrainSet}, {"data.val", d.ValSet}, {"data.test", d.TestSet}} {
		if s.set == nil || s.key == "data.val" && s.set == d.TrainSet {
			continue
		}
		var stamps []FileStamp
		for _, smp := range s.set.Samples {
			info, err := os.Stat(smp.Path)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.key, err)
			}
			rel, err := filepath.Rel(s.set.Root, smp.Path)
			if err != nil {
				rel = smp.Path
			}
			stamps = append(stamps, FileStamp{Path: filepath.ToSlash(rel), Size: info.Size(), ModTime: info.ModTime().UnixNano()})
		}
		slices.SortFunc(stamps, func(a, b FileStamp) int { return strings.Compare(a.Path, b.Path) })
		out[s.key] = stamps
	}
	return out, nil
}

// diff describes how now differs from f, folder by folder ("" when it
// does not): the files removed, added and changed.
func (f DataFingerprint) diff(now DataFingerprint) string {
	var parts []string
	for _, key := range []string{"data.train", "data.val", "data.test"} {
		was := map[string]FileStamp{}
		for _, s := range f[key] {
			was[s.Path] = s
		}
		var added, changed []string
		for _, s := range now[key] {
			old, ok := was[s.Path]
			switch {
			case !ok:
				added = append(added, s.Path)
			case old != s:
				changed = append(changed, s.Path)
			}
			delete(was, s.Path)
		}
		removed := slices.Sorted(func(yield func(string) bool) {
			for p := range was {
				if !yield(p) {
					return
				}
			}
		})
		var what []string
		for _, c := range []struct {
			verb  string
			paths []string
		}{{"removed", removed}, {"added", added}, {"changed", changed}} {
			if len(c.paths) > 0 {
				what = append(what, fmt.Sprintf("%d files %s since the checkpoint: %s", len(c.paths), c.verb, fewPaths(c.paths)))
			}
		}
		if what != nil {
			parts = append(parts, key+": "+strings.Join(what, "; "))
		}
	}
	return strings.Join(parts, "; ")
}

// fewPaths lists up to five paths.
func fewPaths(paths []string) string {
	if len(paths) <= 5 {
		return strings.Join(paths, ", ")
	}
	return strings.Join(paths[:5], ", ") + ", …"
}
