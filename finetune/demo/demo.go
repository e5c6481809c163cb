// Package demo is finetune's built-in demonstration: the classic
// small-data transfer problem, end to end on a CPU.
//
// A ResNet is first trained on 8 of the 10 Fashion-MNIST classes: it
// stands in for ImageNet weights, which an offline machine cannot
// download, and is cached for later runs. The target task is the two
// held-out classes — T-shirt/top against shirt, the most confusable
// pair — with 1,000 training images each, as in the classic question,
// tested on their images of the official test split, all as negatives
// (light backgrounds): pictures unlike the source model's, as the
// question's were unlike ImageNet. Two fine-tunings
// run side by side: the classic Keras recipe of the question (flatten
// into FC [1024, 512, 256], dropout 0.5, BatchNorm in the old Keras
// behaviour, a fixed long training) and finetune's default recipe.
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/finetune-go/finetune/internal/fashionmnist"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
)

// Target classes (Fashion-MNIST labels) and the source classes.
var (
	TargetClasses = []int{0, 6}
	SourceClasses = []int{1, 2, 3, 4, 5, 7, 8, 9}
)

// Options configure the demo. The zero value, after Defaults, is the full
// demo.
type Options struct {
	// Work holds the prepared image folders and the cached source model.
	Work string
	// Out is the parent of the two runs' folders.
	Out string
	// Quick shrinks everything to run in about a minute (CI).
	Quick bool
	// Weights, when set, are used instead of the Fashion-MNIST source
	// model (real torchvision weights, say).
	Weights string
	// Arch is the ResNet trained; resnet18 keeps the demo minutes long.
	Arch string
	// Device as in finetune.Config.
	Device string
	// DataDir holds Fashion-MNIST's IDX files.
	DataDir  string
	Observer func(finetune.Event)
}

// Defaults fills the zero fields.
func (o Options) Defaults() Options {
	if o.Work == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		o.Work = filepath.Join(cache, "finetune", "demo")
	}
	if o.Out == "" {
		o.Out = filepath.Join("runs", "demo")
	}
	if o.Arch == "" {
		o.Arch = "resnet18"
	}
	if o.Device == "" {
		o.Device = "auto"
	}
	if o.DataDir == "" {
		o.DataDir = fashionmnist.DefaultDir
	}
	return o
}

// scale holds the sizes that Quick changes.
type scale struct {
	sourcePerClass, targetPerClass, testPerClass int
	sourceEpochs, classicEpochs                  int
	headEpochs, finetuneEpochs                   int
	imageSize                                    int
}

func (o Options) scale() scale {
	if o.Quick {
		return scale{sourcePerClass: 200, targetPerClass: 150, testPerClass: 200, sourceEpochs: 3,
			classicEpochs: 6, headEpochs: 3, finetuneEpochs: 3, imageSize: 32}
	}
	return scale{sourcePerClass: 500, targetPerClass: 1000, testPerClass: 0, sourceEpochs: 4,
		classicEpochs: 20, headEpochs: 4, finetuneEpochs: 10, imageSize: 32}
}

// Row is one recipe's line of the demo's table.
type Row struct {
	Recipe          string
	TrainAccuracy   float64 // in evaluation mode on the training images, at the kept epoch
	TestAccuracy    float64
	Gap             float64
	Epochs          int
	HeadParams      int64
	CheckpointBytes int64
	Seconds         float64
	RunDir          string
}

// Report is the demo's outcome.
type Report struct {
	Rows          []Row
	SourceWeights string
}

// Table formats the report as the README shows it.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| recipe | train acc | test acc | gap | epochs | head params | checkpoint | time |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %.4f | %.4f | %+.4f | %d | %s | %s | %.0f s |\n", row.Recipe, row.TrainAccuracy,
			row.TestAccuracy, row.Gap, row.Epochs, nn.Thousands(row.HeadParams), nn.Bytes(row.CheckpointBytes), row.Seconds)
	}
	return b.String()
}

// Run prepares the data, trains or reuses the source model and runs both
// recipes.
func Run(ctx context.Context, o Options) (*Report, error) {
	o = o.Defaults()
	sc := o.scale()
	dirs, err := prepare(o, sc)
	if err != nil {
		return nil, err
	}
	rep := &Report{SourceWeights: o.Weights}
	if rep.SourceWeights == "" {
		if rep.SourceWeights, err = sourceModel(ctx, o, sc, dirs.source); err != nil {
			return nil, err
		}
	}
	for _, recipe := range []struct {
		name string
		cfg  func(finetune.Config) finetune.Config
	}{{"classic Keras recipe", classic(sc)}, {"finetune default", defaults(sc)}} {
		cfg := finetune.Defaults()
		cfg.Data.Train, cfg.Data.Test = dirs.train, dirs.test
		cfg.Data.ImageSize = sc.imageSize
		cfg.Data.Resize = sc.imageSize
		cfg.Model.Arch, cfg.Model.Weights = o.Arch, rep.SourceWeights
		cfg.Device = o.Device
		cfg = recipe.cfg(cfg)
		cfg.Output.Dir = filepath.Join(o.Out, strings.ReplaceAll(strings.SplitN(recipe.name, " ", 2)[0], " ", "-"))
		o.info("demo: %s → %s", recipe.name, cfg.Output.Dir)
		res, err := o.train(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("demo: %s: %w", recipe.name, err)
		}
		row := Row{Recipe: recipe.name, TrainAccuracy: res.Best.TrainAccuracy, TestAccuracy: res.Test.Accuracy,
			Epochs: len(res.History), HeadParams: res.HeadParams, Seconds: res.Seconds, RunDir: cfg.Output.Dir}
		row.Gap = row.TrainAccuracy - row.TestAccuracy
		for _, c := range res.Checkpoints {
			if c.Form == cfg.Output.Checkpoint || cfg.Output.Checkpoint == "both" && c.Form == "delta" {
				row.CheckpointBytes = c.Bytes
			}
		}
		res.Model.Close()
		rep.Rows = append(rep.Rows, row)
	}
	return rep, nil
}

// train runs cfg, recorded in its folder cfg.Output.Dir. The folder is
// the demo's own: the last demo's run there is replaced.
func (o Options) train(ctx context.Context, cfg finetune.Config) (*finetune.Result, error) {
	if err := os.RemoveAll(cfg.Output.Dir); err != nil {
		return nil, err
	}
	folder, err := runfolder.Open(cfg.Output.Dir, runfolder.Options{Warn: func(msg string) {
		if o.Observer != nil {
			o.Observer(finetune.Event{Kind: finetune.EventWarning, Fold: -1, Message: msg})
		}
	}})
	if err != nil {
		return nil, err
	}
	res, err := finetune.Train(ctx, cfg, finetune.Options{Observer: o.Observer, Recorder: folder})
	if err = errors.Join(err, folder.Close()); err != nil {
		if res != nil && res.Model != nil {
			res.Model.Close()
		}
		return nil, err
	}
	return res, nil
}

func (o Options) info(format string, args ...any) {
	if o.Observer != nil {
		o.Observer(finetune.Event{Kind: finetune.EventInfo, Fold: -1, Message: fmt.Sprintf(format, args...)})
	}
}

// classic is the question's Keras recipe: flatten into three large dense
// layers with dropout 0.5, the backbone frozen but its BatchNorm layers
// normalising with batch statistics in training and stored ones at test
// time (Keras before 2.1.3), Adam for a fixed number of epochs with no
// early stopping, flips, the full model saved.
func classic(sc scale) func(finetune.Config) finetune.Config {
	return func(c finetune.Config) finetune.Config {
		c.Model.Head = finetune.HeadConfig{Pooling: "flatten", Hidden: []int{1024, 512, 256}, Dropout: 0.5, Init: "random"}
		c.Train.BatchNorm = "legacy"
		c.Train.Optimizer, c.Train.LR, c.Train.WeightDecay = "adam", 1e-4, 0
		c.Train.Schedule, c.Train.LabelSmoothing = "constant", 0
		c.Train.EarlyStopping.Patience = 0
		c.Train.EarlyStopping.Metric = "val_accuracy"
		c.Augment = finetune.AugmentConfig{Enabled: true, Scale: [2]float64{1, 1}, Ratio: [2]float64{1, 1}, HFlip: 0.5}
		c.Stages = []finetune.Stage{{Name: "fit", Epochs: sc.classicEpochs, Freeze: "all"}}
		// All of its epochs, whatever they take: the recipe as asked.
		c.Train.MaxTime = "0"
		c.Output.Checkpoint = "full"
		return c
	}
}

// defaults is finetune's default recipe at the demo's scale.
func defaults(sc scale) func(finetune.Config) finetune.Config {
	return func(c finetune.Config) finetune.Config {
		c.Stages = []finetune.Stage{
			{Name: "head", Epochs: sc.headEpochs, Freeze: "all", BackboneLRMult: 0.1},
			{Name: "finetune", Epochs: sc.finetuneEpochs, Freeze: "layer3", BackboneLRMult: 0.1},
		}
		c.Train.EarlyStopping.Patience = 3
		c.Output.Checkpoint = "delta"
		return c
	}
}

type folders struct{ source, train, test string }

// prepare writes the image folders once; a marker file records the
// sizes they were written with.
func prepare(o Options, sc scale) (folders, error) {
	key := fmt.Sprintf("v2 inverted targets %d %d %d", sc.sourcePerClass, sc.targetPerClass, sc.testPerClass)
	sum := sha256.Sum256([]byte(key))
	root := filepath.Join(o.Work, "data-"+hex.EncodeToString(sum[:4]))
	f := folders{source: filepath.Join(root, "source"), train: filepath.Join(root, "target-train"), test: filepath.Join(root, "target-test")}
	marker := filepath.Join(root, "complete")
	if _, err := os.Stat(marker); err == nil {
		return f, nil
	}
	o.info("demo: writing Fashion-MNIST image folders to %s", root)
	train, err := fashionmnist.Read(o.DataDir, "train")
	if err != nil {
		return f, err
	}
	test, err := fashionmnist.Read(o.DataDir, "t10k")
	if err != nil {
		return f, err
	}
	if err := os.RemoveAll(root); err != nil {
		return f, err
	}
	// Source and target training images come from disjoint classes of the
	// training split; test images from the test split. The target images
	// are negatives — light backgrounds — so they are unlike the source's,
	// as the question's pictures were unlike ImageNet.
	if _, err := train.WriteFolder(f.source, SourceClasses, sc.sourcePerClass); err != nil {
		return f, err
	}
	if _, err := train.WriteFolderMapped(f.train, TargetClasses, sc.targetPerClass, fashionmnist.Invert); err != nil {
		return f, err
	}
	if _, err := test.WriteFolderMapped(f.test, TargetClasses, sc.testPerClass, fashionmnist.Invert); err != nil {
		return f, err
	}
	return f, os.WriteFile(marker, []byte(key+"\n"), 0o644)
}

// SourceConfig is the configuration that trains the stand-in for ImageNet
// weights from scratch: arch on the source classes' images in dir, at
// imageSize pixels for epochs epochs, every layer and BatchNorm statistic
// learning, the run written to out.
func SourceConfig(dir, out, arch string, imageSize, epochs int, device string) finetune.Config {
	cfg := finetune.Defaults()
	cfg.Data.Train, cfg.Data.ValSplit = dir, 0.1
	cfg.Data.ImageSize, cfg.Data.Resize = imageSize, imageSize
	cfg.Model.Arch, cfg.Model.Weights = arch, "none"
	cfg.Model.Head = finetune.HeadConfig{Pooling: "avg", Hidden: []int{}, Init: "random"}
	cfg.Train.BatchNorm, cfg.Train.LR, cfg.Train.LabelSmoothing = "train", 2e-3, 0
	if !models.HasBatchNorm(arch) {
		cfg.Train.BatchNorm = "auto" // the only value a network without BatchNorm takes
	}
	cfg.Train.EarlyStopping.Patience = 0
	cfg.Augment = finetune.AugmentConfig{Enabled: true, Scale: [2]float64{0.7, 1}, Ratio: [2]float64{0.9, 1.1}, HFlip: 0.5}
	cfg.Stages = []finetune.Stage{{Name: "source", Epochs: epochs, Freeze: "none", BackboneLRMult: 1}}
	// Every epoch: the cached model is known by its epochs.
	cfg.Train.MaxTime = "0"
	cfg.Output.Dir = out
	cfg.Output.Checkpoint = "full"
	cfg.Device = device
	return cfg
}

// sourceModel trains the stand-in for ImageNet weights, or finds it
// cached, and returns its path: a safetensors file with torchvision's
// keys, which model.weights accepts.
func sourceModel(ctx context.Context, o Options, sc scale, dir string) (string, error) {
	key := fmt.Sprintf("v1 %s %d %d %d", o.Arch, sc.sourcePerClass, sc.sourceEpochs, sc.imageSize)
	sum := sha256.Sum256([]byte(key))
	path := filepath.Join(o.Work, fmt.Sprintf("source-%s-%s.safetensors", o.Arch, hex.EncodeToString(sum[:4])))
	if _, err := os.Stat(path); err == nil {
		o.info("demo: source model cached at %s", path)
		return path, nil
	}
	o.info("demo: training the source model (%s on 8 Fashion-MNIST classes; cached for later runs)", o.Arch)
	start := time.Now()
	cfg := SourceConfig(dir, filepath.Join(o.Work, "source-run"), o.Arch, sc.imageSize, sc.sourceEpochs, o.Device)
	acc, err := TrainSource(ctx, cfg, path, o.Observer)
	if err != nil {
		return "", fmt.Errorf("demo: source model: %w", err)
	}
	o.info("demo: source model: val accuracy %.4f on its 8 classes, %.0f s", acc, time.Since(start).Seconds())
	return path, nil
}

// TrainSource runs cfg, a SourceConfig, and writes the trained backbone
// to path with torchvision's keys, as model.weights reads it; it returns
// the validation accuracy on the source classes.
//
// A network of another family than the ResNets then has its BatchNorm
// statistics re-estimated over the training images (AdaBN, in a second,
// linear-probe run from the first's weights): MobileNetV3's statistics
// follow the weights at momentum 0.01, too slowly for a few epochs, and
// leave the model at chance in evaluation mode (measured: 0.125 on the 8
// classes, with 0.83 in the training steps). The ResNets' source models
// stay as they were trained, so that their cached measurements hold.
func TrainSource(ctx context.Context, cfg finetune.Config, path string, observer func(finetune.Event)) (float64, error) {
	res, err := finetune.Train(ctx, cfg, finetune.Options{Observer: observer})
	if err != nil {
		return 0, err
	}
	defer res.Model.Close()
	s := torch.NewScope()
	defer s.Close()
	md := map[string]string{"source": "Fashion-MNIST classes " + fmt.Sprint(SourceClasses),
		"val_accuracy": fmt.Sprintf("%.4f", res.Val.Accuracy)}
	arch := cfg.Model.Arch
	if slices.Contains(models.Archs(), arch) || !models.HasBatchNorm(arch) {
		return res.Val.Accuracy, nn.WriteSafetensors(path, nn.StateDict(res.Model.Backbone), md)
	}
	trained := path + ".trained"
	if err := nn.WriteSafetensors(trained, nn.StateDict(res.Model.Backbone), md); err != nil {
		return 0, err
	}
	defer os.Remove(trained)
	adapt := cfg
	adapt.Model.Weights, adapt.Train.BatchNorm, adapt.Recipe = trained, "adapt", "linear-probe"
	adapt.Stages = []finetune.Stage{{Name: "adapt", Epochs: 1, Freeze: "all"}}
	adapt.Augment.Enabled = false
	adapt.Output.Dir += "-adapt"
	res2, err := finetune.Train(ctx, adapt, finetune.Options{Observer: observer})
	if err != nil {
		return 0, fmt.Errorf("re-estimating BatchNorm statistics: %w", err)
	}
	defer res2.Model.Close()
	md["val_accuracy"] = fmt.Sprintf("%.4f", res2.Val.Accuracy)
	md["batchnorm"] = "statistics re-estimated over the training images (AdaBN)"
	return res2.Val.Accuracy, nn.WriteSafetensors(path, nn.StateDict(res2.Model.Backbone), md)
}
