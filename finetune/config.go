package finetune

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	textsuggest "github.com/finetune-go/finetune/internal/suggest"
	"github.com/finetune-go/finetune/vision/models"
)

// Config is everything a run needs. Each field has one key, its json
// tag dotted by nesting (train.lr), used everywhere a configuration is
// written or read: a YAML or JSON file (ParseConfig, ConfigYAML), a
// checkpoint's metadata and a run's record (encoding/json), the
// command-line tool's environment variables (FINETUNE_TRAIN_LR) and flags
// (--train.lr). The doc tags are the comments of the default file and the
// flags' help.
type Config struct {
	Data    DataConfig    `json:"data"`
	Model   ModelConfig   `json:"model"`
	Augment AugmentConfig `json:"augment"`
	Train   TrainConfig   `json:"train"`
	Recipe  string        `json:"recipe" doc:"default (the stages as configured), auto (the freeze point of every stage after the first chosen from the measured BatchNorm shift and the data size) or linear-probe (only a logistic regression on the frozen backbone's features, the baseline, as the whole run)"`
	Search  string        `json:"search" doc:"quick (when the first stage's features are cached, a small search over the head's learning rate and weight decay across cross-validation folds picks them before the long run) or off"`
	Probe   bool          `json:"probe" doc:"fit the linear-probe baseline (logistic regression on the frozen backbone's features, L2 chosen by cross-validation) and report it beside the result"`
	// ProbeFallback is a field of its own, not a value of Probe, because
	// it needs the head to start as the probe: that state is what the run
	// falls back to.
	ProbeFallback bool         `json:"probe_fallback" doc:"with model.head.init: probe, the probe's model (the backbone before training, the probe as the head) is epoch 0, validated as every epoch is and the first candidate for the best by train.early_stopping.metric: the run ends with it when no epoch beats it"`
	Stages        []Stage      `json:"stages" doc:"the recipe: stages run in order, each NAME:EPOCHS:FREEZE[:BACKBONE_LR_MULT]; the default trains the head on a frozen backbone, then unfreezes layer3 and layer4 at 3× the learning rate, the head, which starts as the linear probe, staying at lr (docs/recipes.md)"`
	CV            CVConfig     `json:"cv"`
	Output        OutputConfig `json:"output"`
	Seed          uint64       `json:"seed" doc:"one seed fixes data order, augmentation and head initialisation"`
	Device        string       `json:"device" doc:"auto (CUDA when available), cpu, cuda or cuda:N"`
}

// DataConfig says where the images are and how they are batched.
type DataConfig struct {
	Train     string  `json:"train" doc:"folder with one subfolder of images per class (required)"`
	Val       string  `json:"val" doc:"validation folder; empty: split val_split of train off, stratified"`
	Test      string  `json:"test" doc:"optional test folder, evaluated once at the end"`
	ValSplit  float64 `json:"val_split" doc:"fraction of train held out for validation when val is empty"`
	ImageSize int     `json:"image_size" doc:"side of the square crop the network sees"`
	Resize    int     `json:"resize" doc:"shorter side before the center crop at evaluation (0: image_size when the training images are at or below it, so that nothing is cropped away; image_size * 8/7, torchvision's 256 for 224, for larger images)"`
	BatchSize int     `json:"batch_size" doc:"images per step"`
	Workers   int     `json:"workers" doc:"decoding goroutines (0: one per CPU)"`
	// Mean and Std are lists, empty by default, so that "the weights'
	// own" needs no value of its own.
	Mean       []float64 `json:"mean" doc:"per-channel mean (R, G, B) of the normalisation, e.g. [0.5, 0.5, 0.5]; empty: the weights' own (ImageNet's for torchvision's weights and a .pth file, a finetune checkpoint's or a .safetensors file's recorded ones)"`
	Std        []float64 `json:"std" doc:"per-channel standard deviation (R, G, B) of the normalisation, e.g. [0.25, 0.25, 0.25]; empty: the weights' own, as data.mean"`
	OnBadImage string    `json:"on_bad_image" doc:"error (stop, naming the file) or skip (warn and list them at the end)"`
	CacheMB    int       `json:"cache_mb" doc:"memory for decoded images kept across epochs, in MiB (0: no cache)"`
}

// ModelConfig chooses the backbone, its weights and the head.
type ModelConfig struct {
	Arch    string     `json:"arch" doc:"the network, one of NETWORKS"`
	Weights string     `json:"weights" doc:"imagenet (the best published), IMAGENET1K_V1, IMAGENET1K_V2, a .pth/.safetensors path, or none"`
	Head    HeadConfig `json:"head"`
}

// HeadConfig describes the classifier put on the backbone.
type HeadConfig struct {
	Pooling   string  `json:"pooling" doc:"avg, max, avgmax (both, concatenated) or flatten (the whole feature map: large)"`
	Hidden    []int   `json:"hidden" doc:"sizes of hidden layers before the classifier, e.g. [512]; empty: one linear layer"`
	Dropout   float64 `json:"dropout" doc:"dropout before each linear layer of the head"`
	BatchNorm bool    `json:"batchnorm" doc:"BatchNorm1d after each hidden layer"`
	Init      string  `json:"init" doc:"probe (a head of one linear layer starts as the linear probe fitted on the frozen backbone's features, then trains: LP-FT) or random"`
}

// AugmentConfig is the training-time augmentation; evaluation never
// augments.
type AugmentConfig struct {
	Enabled    bool       `json:"enabled" doc:"augment training images (evaluation images never are)"`
	Scale      [2]float64 `json:"scale" doc:"random resized crop: range of the crop's area, as a fraction of the image"`
	Ratio      [2]float64 `json:"ratio" doc:"random resized crop: range of the crop's aspect ratio"`
	HFlip      float64    `json:"hflip" doc:"probability of a horizontal flip"`
	VFlip      float64    `json:"vflip" doc:"probability of a vertical flip"`
	Rotation   float64    `json:"rotation" doc:"rotate by a random angle in [-rotation, rotation] degrees (Keras' rotation_range)"`
	Brightness float64    `json:"brightness" doc:"colour jitter: brightness factor range 1±brightness"`
	Contrast   float64    `json:"contrast" doc:"colour jitter: contrast factor range 1±contrast"`
	Saturation float64    `json:"saturation" doc:"colour jitter: saturation factor range 1±saturation"`
	Hue        float64    `json:"hue" doc:"colour jitter: hue shift in [-hue, hue] (at most 0.5)"`
	Mixup      float64    `json:"mixup" doc:"mixup Beta(α, α) parameter; 0: off"`
	Cutmix     float64    `json:"cutmix" doc:"cutmix Beta(α, α) parameter; 0: off"`
}

// TrainConfig holds the optimisation settings shared by every stage.
type TrainConfig struct {
	BatchNorm      string  `json:"batchnorm" doc:"auto (measure how far the training images are from the stored BatchNorm statistics: adapt when the shift passes finetune/shift.Threshold, else frozen; train without pretrained weights), frozen (stored statistics, never updated), train (batch statistics, running ones updated), adapt (re-estimate the running statistics on up to 256 training images chosen by the seed, then frozen: AdaBN) or legacy (batch statistics in training, stored ones at inference: Keras before 2.1.3, kept to show the failure)"`
	BNAffine       string  `json:"bn_affine" doc:"follow (BatchNorm scale and shift frozen with their layer), train (always trained) or freeze (never)"`
	Optimizer      string  `json:"optimizer" doc:"adamw, adam or sgd"`
	LR             float64 `json:"lr" doc:"learning rate of the head (the backbone's is lr times the stage's backbone_lr_mult); the default suits a head that starts as the probe, a random one wants about 1e-3"`
	WeightDecay    float64 `json:"weight_decay" doc:"weight decay; never applied to BatchNorm parameters or biases"`
	Momentum       float64 `json:"momentum" doc:"SGD momentum"`
	Nesterov       bool    `json:"nesterov" doc:"SGD Nesterov momentum"`
	Schedule       string  `json:"schedule" doc:"constant, step, cosine (with linear warmup) or onecycle"`
	WarmupEpochs   float64 `json:"warmup_epochs" doc:"cosine: epochs of linear warmup"`
	StepEvery      int     `json:"step_every" doc:"step schedule: epochs between decays"`
	StepGamma      float64 `json:"step_gamma" doc:"step schedule: factor of each decay"`
	LabelSmoothing float64 `json:"label_smoothing" doc:"label smoothing of the cross entropy"`
	ClassWeights   string  `json:"class_weights" doc:"none or balanced (weights n/(k·n_c) for imbalanced classes)"`
	GradClip       float64 `json:"grad_clip" doc:"clip the global gradient norm to this; 0: off"`
	StepsPerEpoch  int     `json:"steps_per_epoch" doc:"steps per epoch; 0: ceil(train images / batch_size), one pass"`
	CacheFeatures  string  `json:"cache_features" doc:"auto (train the head on backbone features computed once, where that gives the same result), on or off"`
	// CacheActivations and ActivationCacheMB are caching at the freeze
	// point of a stage whose backbone partly trains; CacheFeatures is
	// that of a stage whose backbone is wholly fixed.
	CacheActivations  string `json:"cache_activations" doc:"auto (a stage that trains the layers after a frozen prefix with stored BatchNorm statistics runs the prefix once per training image and augmented view, as many views as fit in train.activation_cache_mb, and each epoch only the layers that train) or off (the prefix runs every step)"`
	ActivationCacheMB int    `json:"activation_cache_mb" doc:"memory for those cached activations, in MiB; 0: half the memory available (MemAvailable) when the plan is made"`
	Precision         string `json:"precision" doc:"auto (bf16 on CUDA and on CPUs with AMX-BF16 or AVX512-BF16, else fp32), bf16 (the frozen backbone in bfloat16; the layers that train under bfloat16 autocast on CUDA, in float32 on the CPU), fp16 (autocast with loss scaling, CUDA) or fp32"`
	ChannelsLast      string `json:"channels_last" doc:"auto (on CUDA), on or off: the memory layout of images and convolution weights"`
	// ProbePatience is not a field of EarlyStopping: it compares with the
	// run's best so far, the probe's model included, not with the
	// stage's own best epoch.
	ProbePatience int `json:"probe_patience" doc:"with probe_fallback, a stage after the first stops when none of its first probe_patience epochs beats the best so far by train.early_stopping.metric, the probe's model (epoch 0) included: the run would end with that earlier model anyway; 0 (the default): never, since train.max_time already keeps a stage from running past the budget and on bench/recipes' tasks (docs/recipes.md) stopping after 3 epochs cost 0.6 points of the fine-tuning's gain"`
	// MaxTime is a string, not a time.Duration: it has a value, auto, no
	// duration stands for, and it reads the same in every source.
	MaxTime       string        `json:"max_time" doc:"the run's time budget, a duration (90s, 20m, 1h30m) or 0 for none: the plan keeps of each stage, in order, the epochs its estimate fits in what is left after the time spent and the final evaluations, and a stage stops when its next epoch would pass the budget; auto: none on CUDA, on the CPU the larger of 2m and the estimated time of one epoch of a plain float32 loop on a frozen backbone"`
	EarlyStopping EarlyStopping `json:"early_stopping"`
}

// EarlyStopping stops a stage when the validation metric stops improving;
// the best epoch's weights are restored at the end.
type EarlyStopping struct {
	Metric   string  `json:"metric" doc:"val_loss or val_accuracy"`
	Patience int     `json:"patience" doc:"epochs without improvement before stopping; 0: never stop early"`
	MinDelta float64 `json:"min_delta" doc:"smallest change that counts as an improvement"`
}

// Stage is one step of the recipe.
type Stage struct {
	Name           string  `json:"name"`
	Epochs         int     `json:"epochs"`
	Freeze         string  `json:"freeze"`
	BackboneLRMult float64 `json:"backbone_lr_mult"`
}

// CVConfig turns on stratified k-fold cross-validation.
type CVConfig struct {
	Folds int `json:"folds" doc:"k for stratified k-fold cross-validation over train (+val); 0: one run"`
}

// OutputConfig says where results go.
type OutputConfig struct {
	Dir         string `json:"dir" doc:"run folder: metrics.jsonl, the config used, checkpoints, plots; empty: a new folder runs/<UTC time> (runs/latest links to the newest)"`
	Checkpoint  string `json:"checkpoint" doc:"full (the whole model), delta (head, BatchNorm statistics and unfrozen layers only) or both"`
	Tensorboard bool   `json:"tensorboard" doc:"also write TensorBoard event files"`
}

// Defaults returns the configuration a run uses for every key it is not
// given: a sound run for a user who sets only data.train.
func Defaults() Config {
	return Config{
		Data: DataConfig{ValSplit: 0.2, ImageSize: 224, BatchSize: 32, Mean: []float64{}, Std: []float64{},
			OnBadImage: "error", CacheMB: 2048},
		Model: ModelConfig{Arch: "resnet50", Weights: "imagenet",
			Head: HeadConfig{Pooling: "avg", Hidden: []int{}, Init: "probe"}},
		Augment: AugmentConfig{Enabled: true, Scale: [2]float64{0.85, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}, HFlip: 0.5},
		Recipe:  "default", Search: "quick", Probe: true, ProbeFallback: true,
		Train: TrainConfig{BatchNorm: "auto", BNAffine: "follow", Optimizer: "adamw", LR: 1e-4,
			WeightDecay: 0.01, Momentum: 0.9, Schedule: "cosine", WarmupEpochs: 1, StepEvery: 10, StepGamma: 0.1,
			ClassWeights: "none", CacheFeatures: "auto", CacheActivations: "auto", Precision: "auto", ChannelsLast: "auto",
			ProbePatience: 0, MaxTime: "auto", EarlyStopping: EarlyStopping{Metric: "val_loss", Patience: 5, MinDelta: 1e-4}},
		Stages: []Stage{
			{Name: "head", Epochs: 5, Freeze: "all", BackboneLRMult: 0.1},
			{Name: "finetune", Epochs: 15, Freeze: "layer2", BackboneLRMult: 3},
		},
		Output: OutputConfig{Checkpoint: "both"},
		Seed:   42,
		Device: "auto",
	}
}

// Key is a configuration key with its kind, comment and default.
type Key struct {
	Name    string
	Kind    reflect.Kind
	Doc     string
	Default any
}

// Keys returns every key of Config, in the order of its fields: what
// the default file, the flags and the environment variables of the
// command-line tool are made of.
func Keys() []Key {
	var out []Key
	walkKeys(reflect.ValueOf(Defaults()), "", func(k Key) { out = append(out, k) })
	return out
}

func walkKeys(v reflect.Value, prefix string, fn func(Key)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := dotted(prefix, keyName(f))
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			walkKeys(fv, name, fn)
			continue
		}
		fn(Key{Name: name, Kind: f.Type.Kind(), Doc: strings.ReplaceAll(f.Tag.Get("doc"), "NETWORKS", strings.Join(models.Networks(), ", ")), Default: fv.Interface()})
	}
}

// suggest names the key closest to a typo among names.
func suggest(k string, names []string) string {
	best := textsuggest.Closest(k, names, 3)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// ParseStages parses NAME:EPOCHS:FREEZE[:BACKBONE_LR_MULT], comma separated.
func ParseStages(s string) ([]Stage, error) {
	var out []Stage
	for _, item := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(item), ":")
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("stages: %q: want NAME:EPOCHS:FREEZE[:BACKBONE_LR_MULT]", item)
		}
		epochs, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("stages: %q: epochs %q is not an integer", item, f[1])
		}
		st := Stage{Name: f[0], Epochs: epochs, Freeze: f[2], BackboneLRMult: 0.1}
		if len(f) == 4 {
			if st.BackboneLRMult, err = strconv.ParseFloat(f[3], 64); err != nil {
				return nil, fmt.Errorf("stages: %q: backbone_lr_mult %q is not a number", item, f[3])
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// FreezePoints are the values of a ResNet stage's freeze, from nothing
// frozen to the whole backbone: "layer3" freezes the stem and
// layer1..layer3. Other families name their own (Model.FreezePoints).
var FreezePoints = []string{"none", "stem", "layer1", "layer2", "layer3", "layer4", "all"}

func oneOf(key, value string, allowed ...string) error {
	if slices.Contains(allowed, value) {
		return nil
	}
	return fmt.Errorf("%s: %q is not one of %s%s", key, value, strings.Join(allowed, ", "), suggest(value, allowed))
}

// Validate checks every value and names the key of the first bad one.
func (c Config) Validate() error {
	var errs []string
	check := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	positive := func(key string, v float64) {
		if !(v > 0) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Sprintf("%s: must be positive, got %v", key, v))
		}
	}
	fraction := func(key string, v float64, open bool) {
		if v < 0 || v > 1 || (open && v >= 1) || math.IsNaN(v) {
			errs = append(errs, fmt.Sprintf("%s: must be in [0, 1%s, got %v", key, map[bool]string{true: ")", false: "]"}[open], v))
		}
	}
	check(oneOf("model.arch", c.Model.Arch, models.Networks()...))
	if c.Data.Train == "" {
		errs = append(errs, "data.train: required: the folder of training images, one subfolder per class")
	}
	if c.Data.Val == "" && c.CV.Folds == 0 {
		if !(c.Data.ValSplit > 0 && c.Data.ValSplit < 1) {
			errs = append(errs, fmt.Sprintf("data.val_split: must be in (0, 1) when data.val is empty, got %v", c.Data.ValSplit))
		}
	}
	positive("data.image_size", float64(c.Data.ImageSize))
	positive("data.batch_size", float64(c.Data.BatchSize))
	if c.Data.Resize != 0 && c.Data.Resize < c.Data.ImageSize {
		errs = append(errs, fmt.Sprintf("data.resize: %d is smaller than data.image_size %d", c.Data.Resize, c.Data.ImageSize))
	}
	if c.Data.Workers < 0 {
		errs = append(errs, fmt.Sprintf("data.workers: must be 0 or more, got %d", c.Data.Workers))
	}
	if c.Data.CacheMB < 0 {
		errs = append(errs, fmt.Sprintf("data.cache_mb: must be 0 or more, got %d", c.Data.CacheMB))
	}
	check(checkChannels("data.mean", c.Data.Mean, false))
	check(checkChannels("data.std", c.Data.Std, true))
	check(oneOf("data.on_bad_image", c.Data.OnBadImage, "error", "skip"))
	check(oneOf("model.head.pooling", c.Model.Head.Pooling, "avg", "max", "avgmax", "flatten"))
	for i, h := range c.Model.Head.Hidden {
		if h <= 0 {
			errs = append(errs, fmt.Sprintf("model.head.hidden[%d]: must be positive, got %d", i, h))
		}
	}
	fraction("model.head.dropout", c.Model.Head.Dropout, true)
	check(oneOf("model.head.init", c.Model.Head.Init, "probe", "random"))
	a := c.Augment
	for _, r := range []struct {
		key string
		v   [2]float64
	}{{"augment.scale", a.Scale}, {"augment.ratio", a.Ratio}} {
		if !(r.v[0] > 0 && r.v[0] <= r.v[1]) {
			errs = append(errs, fmt.Sprintf("%s: want 0 < min <= max, got %v", r.key, r.v))
		}
	}
	if a.Scale[1] > 1 {
		errs = append(errs, fmt.Sprintf("augment.scale: max must be at most 1, got %v", a.Scale[1]))
	}
	fraction("augment.hflip", a.HFlip, false)
	fraction("augment.vflip", a.VFlip, false)
	if a.Rotation < 0 || a.Rotation > 180 {
		errs = append(errs, fmt.Sprintf("augment.rotation: must be in [0, 180] degrees, got %v", a.Rotation))
	}
	for _, j := range []struct {
		key string
		v   float64
	}{{"augment.brightness", a.Brightness}, {"augment.contrast", a.Contrast}, {"augment.saturation", a.Saturation}, {"augment.mixup", a.Mixup}, {"augment.cutmix", a.Cutmix}} {
		if j.v < 0 {
			errs = append(errs, fmt.Sprintf("%s: must be 0 or more, got %v", j.key, j.v))
		}
	}
	if a.Hue < 0 || a.Hue > 0.5 {
		errs = append(errs, fmt.Sprintf("augment.hue: must be in [0, 0.5], got %v", a.Hue))
	}
	t := c.Train
	check(checkBatchNorm(c.Model.Arch, t.BatchNorm))
	check(oneOf("recipe", c.Recipe, "default", "auto", "linear-probe"))
	check(oneOf("search", c.Search, "quick", "off"))
	if c.Recipe == "linear-probe" && len(c.Model.Head.Hidden) > 0 {
		errs = append(errs, "recipe: linear-probe fits one linear layer: model.head.hidden must be empty")
	}
	check(oneOf("train.bn_affine", t.BNAffine, "follow", "train", "freeze"))
	check(oneOf("train.optimizer", t.Optimizer, "adamw", "adam", "sgd"))
	positive("train.lr", t.LR)
	if t.WeightDecay < 0 {
		errs = append(errs, fmt.Sprintf("train.weight_decay: must be 0 or more, got %v", t.WeightDecay))
	}
	fraction("train.momentum", t.Momentum, true)
	check(oneOf("train.schedule", t.Schedule, "constant", "step", "cosine", "onecycle"))
	if t.WarmupEpochs < 0 {
		errs = append(errs, fmt.Sprintf("train.warmup_epochs: must be 0 or more, got %v", t.WarmupEpochs))
	}
	if t.Schedule == "step" {
		positive("train.step_every", float64(t.StepEvery))
		fraction("train.step_gamma", t.StepGamma, false)
	}
	fraction("train.label_smoothing", t.LabelSmoothing, true)
	check(oneOf("train.class_weights", t.ClassWeights, "none", "balanced"))
	if t.GradClip < 0 {
		errs = append(errs, fmt.Sprintf("train.grad_clip: must be 0 or more, got %v", t.GradClip))
	}
	if t.StepsPerEpoch < 0 {
		errs = append(errs, fmt.Sprintf("train.steps_per_epoch: must be 0 or more, got %d", t.StepsPerEpoch))
	}
	check(oneOf("train.cache_features", t.CacheFeatures, "auto", "on", "off"))
	check(oneOf("train.cache_activations", t.CacheActivations, "auto", "off"))
	if t.ActivationCacheMB < 0 {
		errs = append(errs, fmt.Sprintf("train.activation_cache_mb: must be 0 or more, got %d", t.ActivationCacheMB))
	}
	check(oneOf("train.precision", t.Precision, "auto", "bf16", "fp16", "fp32"))
	check(oneOf("train.channels_last", t.ChannelsLast, "auto", "on", "off"))
	check(oneOf("train.early_stopping.metric", t.EarlyStopping.Metric, "val_loss", "val_accuracy"))
	if t.ProbePatience < 0 {
		errs = append(errs, fmt.Sprintf("train.probe_patience: must be 0 or more, got %d", t.ProbePatience))
	}
	if _, err := parseMaxTime(t.MaxTime); err != nil {
		errs = append(errs, err.Error())
	}
	if t.EarlyStopping.Patience < 0 {
		errs = append(errs, fmt.Sprintf("train.early_stopping.patience: must be 0 or more, got %d", t.EarlyStopping.Patience))
	}
	if len(c.Stages) == 0 {
		errs = append(errs, "stages: at least one stage is needed")
	}
	names := map[string]bool{}
	for i, s := range c.Stages {
		key := fmt.Sprintf("stages[%d]", i)
		if s.Name == "" {
			errs = append(errs, key+".name: required")
		} else if names[s.Name] {
			errs = append(errs, fmt.Sprintf("%s.name: %q used twice", key, s.Name))
		}
		names[s.Name] = true
		positive(key+".epochs", float64(s.Epochs))
		check(checkFreeze(c.Model.Arch, key+".freeze", s.Freeze))
		if !(s.BackboneLRMult >= 0) {
			errs = append(errs, fmt.Sprintf("%s.backbone_lr_mult: must be 0 or more, got %v", key, s.BackboneLRMult))
		}
	}
	if c.CV.Folds == 1 || c.CV.Folds < 0 {
		errs = append(errs, fmt.Sprintf("cv.folds: want 0 (off) or at least 2, got %d", c.CV.Folds))
	}
	check(oneOf("output.checkpoint", c.Output.Checkpoint, "full", "delta", "both"))
	if c.Device != "auto" && c.Device != "cpu" && c.Device != "cuda" && !strings.HasPrefix(c.Device, "cuda:") {
		errs = append(errs, fmt.Sprintf("device: %q is not auto, cpu, cuda or cuda:N", c.Device))
	}
	if len(errs) > 0 {
		return &ConfigError{Problems: errs}
	}
	return nil
}

// ConfigError lists every invalid value, each naming its key.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	if len(e.Problems) == 1 {
		return "config: " + e.Problems[0]
	}
	return "config: " + strings.Join(e.Problems, "; ")
}

// parseMaxTime parses train.max_time: a duration, 0 for none; auto
// returns -1.
func parseMaxTime(s string) (time.Duration, error) {
	if s == "auto" {
		return -1, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("train.max_time: %q is not auto, 0 (none) or a duration such as 90s, 20m or 1h30m", s)
	}
	return d, nil
}

// EvalResize is data.resize, or 8/7 of data.image_size when it is 0
// (torchvision's 256 for 224). A run decides data.resize: 0 from its
// training images' sizes (Plan.EvalResize); EvalResize is what it
// falls back to when none can be read, and what checkpoints written
// before the plan recorded it used.
func (c Config) EvalResize() int {
	if c.Data.Resize > 0 {
		return c.Data.Resize
	}
	return c.Data.ImageSize * 8 / 7
}
