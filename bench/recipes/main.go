// Command recipes is the experiment behind finetune's defaults: on pairs
// of Fashion-MNIST classes, as they are and shifted, it compares the
// default recipe (train.batchnorm: auto, model.head.init: probe,
// probe_fallback, nothing tuned) with the same recipe in each fixed
// BatchNorm mode, with the linear probe alone, and with what a small grid
// search over the BatchNorm mode and the learning rate picks on the
// validation split. It writes docs/recipes.md.
//
// The source model stands in for ImageNet weights (see bench/bnauto). A
// run is the default configuration with only what the data forces
// changed: 32-pixel images, resnet18 and the source model's weights.
//
// -arch trains the source model and every run as another network of the
// zoo (mobilenet_v3_small, efficientnet_b0, convnext_tiny...), so the
// recipe's claims are measured beyond ResNets; its source model and runs
// are cached apart. The settings a family cannot run are left out: the
// fixed BatchNorm modes and the grid without BatchNorm (ConvNeXt, ViT,
// Swin), recipe: auto on any network but a ResNet (its freeze rule names
// a ResNet's stages). For example
//
//	go run ./bench/recipes -arch mobilenet_v3_small -only default,probe -seeds 42 -pairs 0-6 -variants original
//
// Usage, from the repository root:
//
//	go run ./bench/recipes
//
// Each task takes about 7 minutes per seed on one core; two processes
// with OMP_NUM_THREADS=1 and one seed each (-seeds 42, -seeds 7) use two
// cores best, and a last run with -seeds 42,7 writes the table. Every
// run's outcome is cached in the work folder, so that last run only
// reads them.
//
// Experiments on the defaults run a part of the table: -only names the
// settings (default,probe), -pairs, -variants and -seeds the tasks, and
// -set KEY=VALUE changes a configuration key of every run, parsed as a
// config file parses it, so a variant of the default is
//
//	go run ./bench/recipes -only default,probe -seeds 42 -set model.head.dropout=0
//
// A variant's runs are cached apart from the default's, under the
// variant's -set keys.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/finetune-go/finetune/bench/internal/fmtasks"
	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/demo"
	"github.com/finetune-go/finetune/finetune/shift"
	"github.com/finetune-go/finetune/internal/fashionmnist"
	"github.com/finetune-go/finetune/vision/models"
)

type options struct {
	dataDir, work, out string
	// arch is the source model's and every run's network.
	arch string
	// precision is every run's train.precision.
	precision         string
	trainPer, testPer int
	source            int
	pairs             []fmtasks.Pair
	variants          []fmtasks.Variant
	seeds             []uint64
	// only names the settings to run (all when empty).
	only map[string]bool
	// sets are the KEY=VALUE edits of every run (-set), and variant
	// names them: the runs of a variant are cached apart.
	sets    []string
	variant string
	// screen are the tasks and screenSeeds the seeds the trials behind
	// the defaults ran on (-screen); none: no such section.
	screen      []screenTask
	screenSeeds []uint64
}

// screenTask is a task of the screening: a pair and an image variant.
type screenTask struct {
	pair    fmtasks.Pair
	variant fmtasks.Variant
}

// settingNames are the names -only takes.
var settingNames = []string{"default", "recipe-auto", "frozen", "adapt", "train", "legacy", "probe", "grid"}

// applies returns why the setting called name cannot run on arch, or ""
// when it can.
func applies(arch, name string) string {
	switch {
	case name == "recipe-auto" && !slices.Contains(models.Archs(), arch):
		return "recipe: auto's freeze rule (shift.SuggestFreeze) names a ResNet's stages"
	case (slices.Contains(modes, name) || name == "grid") && !models.HasBatchNorm(arch):
		return arch + " has no BatchNorm layers"
	}
	return ""
}

// runs reports whether the setting called name is to run.
func (o options) runs(name string) bool { return len(o.only) == 0 || o.only[name] }

// modes are the fixed BatchNorm modes compared with auto.
var modes = []string{"frozen", "adapt", "train", "legacy"}

// gridModes and gridLRs span the grid: every pair of them is one run.
var (
	gridModes = []string{"frozen", "adapt", "train"}
	gridLRs   = []float64{1e-4, 1e-3, 1e-2}
)

// outcome is one run's result.
type outcome struct {
	ValAccuracy, ValLoss, TestAccuracy float64
	// BatchNorm is the mode the run used (auto resolved).
	BatchNorm string
	Seconds   float64
	// EndedWithProbe says probe_fallback ended the run with the probe's
	// model; ProbeVal is the probe's validation accuracy, when it ran
	// (logged beside the run's).
	EndedWithProbe bool
	ProbeVal       float64
	// History is every epoch's stage, validation accuracy and loss.
	History []epoch
}

// epoch is an epoch of a run's history, for reading why a run ended
// where it did.
type epoch struct {
	Stage                      string
	Epoch                      int
	TrainLoss, ValLoss, ValAcc float64
	Best                       bool
}

// setting is one configuration of a task's runs.
type setting struct {
	name string
	edit func(*finetune.Config)
}

func withMode(mode string) setting {
	return setting{mode, func(c *finetune.Config) { c.Train.BatchNorm = mode }}
}

func gridPoint(mode string, lr float64) setting {
	return setting{fmt.Sprintf("%s lr %g", mode, lr), func(c *finetune.Config) { c.Train.BatchNorm, c.Train.LR = mode, lr }}
}

// row is one task's line of the table, averaged over the seeds.
type row struct {
	task fmtasks.Task
	// auto is the mode train.batchnorm: auto chose, per seed.
	auto []string
	// acc is the test accuracy of each setting that ran, by its -only
	// name (a fixed BatchNorm mode by the mode).
	acc map[string]float64
	// fellBack counts the default's runs that ended with the probe's
	// model (probe_fallback: no epoch beat it on validation by the
	// early-stopping metric).
	fellBack          int
	gridPick          []string // per seed
	gridTest, gridMax float64
	// seedGaps is the default's test accuracy minus the grid pick's, per
	// seed; probeGaps minus the probe's.
	seedGaps, probeGaps []float64
	// seconds is the training time of the task's runs.
	seconds float64
}

func main() {
	var o options
	flag.StringVar(&o.dataDir, "data", fashionmnist.DefaultDir, "Fashion-MNIST's IDX files")
	flag.StringVar(&o.work, "work", fmtasks.WorkDir("bnauto"), "image folders, the source model and the runs (shared with bench/bnauto)")
	flag.StringVar(&o.out, "out", filepath.Join("docs", "recipes.md"), "results (markdown)")
	flag.StringVar(&o.arch, "arch", "resnet18", "the source model's and every run's network, one of "+strings.Join(models.Networks(), ", ")+
		" (runs of another than resnet18 are cached apart)")
	flag.StringVar(&o.precision, "precision", "auto", "train.precision of every run: auto, fp32 or bf16 (runs of an explicit precision are cached apart)")
	flag.IntVar(&o.trainPer, "train", 300, "training images per class of a task (a fifth is held out for validation)")
	flag.IntVar(&o.testPer, "test", 1000, "test images per class (from the test split)")
	flag.IntVar(&o.source, "source", 500, "images per class the source model trains on")
	pairs := flag.String("pairs", "0-6,2-4,5-7", "class pairs, comma separated")
	variants := flag.String("variants", "original,washed-out,inverted", "image variants, comma separated: "+fmtasks.VariantNames())
	seeds := flag.String("seeds", "42,7", "seeds, comma separated: accuracies are averaged over them")
	only := flag.String("only", "", "settings to run, comma separated: "+strings.Join(settingNames, ", ")+"; empty: all")
	flag.Func("set", "KEY=VALUE: a configuration key of every run, as a config file sets it "+
		"(model.head.dropout=0, augment.scale=[0.8,1], stages=head:5:all,finetune:15:layer3); repeat for more keys", func(s string) error {
		if _, err := setKey(finetune.Defaults(), s); err != nil {
			return err
		}
		o.sets = append(o.sets, s)
		return nil
	})
	screen := flag.String("screen", "", "tasks of the section on the trials behind the defaults, PAIR:VARIANT comma separated (0-6:original); empty: no such section")
	screenSeeds := flag.String("screen-seeds", "42", "seeds of the trials, comma separated")
	flag.Parse()
	var err error
	if o.pairs, err = fmtasks.ParsePairs(*pairs); err != nil {
		log.Fatalf("-pairs: %v", err)
	}
	if o.variants, err = fmtasks.ParseVariants(*variants); err != nil {
		log.Fatalf("-variants: %v", err)
	}
	if o.seeds, err = fmtasks.ParseSeeds(*seeds); err != nil {
		log.Fatalf("-seeds: %v", err)
	}
	if !slices.Contains(models.Networks(), o.arch) {
		log.Fatalf("-arch: %q is not one of %s", o.arch, strings.Join(models.Networks(), ", "))
	}
	if o.only, err = parseOnly(*only, o.arch); err != nil {
		log.Fatalf("-only: %v", err)
	}
	o.variant = strings.Join(o.sets, " ")
	if *screen != "" {
		if o.screen, err = parseScreen(*screen); err != nil {
			log.Fatalf("-screen: %v", err)
		}
		if o.screenSeeds, err = fmtasks.ParseSeeds(*screenSeeds); err != nil {
			log.Fatalf("-screen-seeds: %v", err)
		}
	}
	fmtasks.Main(func(ctx context.Context) error { return run(ctx, o) })
}

// parseOnly parses -only: the settings to run, comma separated, each of
// which must apply to arch; for "" every setting that applies to arch,
// nil when that is all of them.
func parseOnly(only, arch string) (map[string]bool, error) {
	out := map[string]bool{}
	if only == "" {
		for _, name := range settingNames {
			if applies(arch, name) == "" {
				out[name] = true
			}
		}
		if len(out) == len(settingNames) {
			return nil, nil
		}
		return out, nil
	}
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(settingNames, name) {
			return nil, fmt.Errorf("%q is not one of %s", name, strings.Join(settingNames, ", "))
		}
		if why := applies(arch, name); why != "" {
			return nil, fmt.Errorf("%s does not apply to %s: %s", name, arch, why)
		}
		out[name] = true
	}
	return out, nil
}

// setKey sets one key of cfg from "KEY=VALUE", through the parser of
// configuration files, so that a key means here what it means everywhere.
func setKey(cfg finetune.Config, kv string) (finetune.Config, error) {
	key, value, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return cfg, fmt.Errorf("-set %q: want KEY=VALUE", kv)
	}
	// Block style, where a plain value may hold commas (stages'
	// compact form) and a flow list ([0.8, 1]) is still a list.
	var doc strings.Builder
	for i, part := range strings.Split(key, ".") {
		fmt.Fprintf(&doc, "\n%s%s:", strings.Repeat("  ", i), part)
	}
	fmt.Fprintf(&doc, " %s\n", value)
	out, err := finetune.ParseConfig([]byte(doc.String()), cfg)
	if err != nil {
		return cfg, fmt.Errorf("-set %q: %w", kv, err)
	}
	return out, nil
}

func run(ctx context.Context, o options) error {
	sets, weights, err := fmtasks.Prepare(ctx, o.dataDir, o.work, o.source, o.arch)
	if err != nil {
		return err
	}
	// Every folder is written before any run, so that runs of other
	// seeds in other processes can share the work folder.
	var tasks []fmtasks.Task
	for _, p := range o.pairs {
		for _, v := range o.variants {
			task, err := fmtasks.Write(o.work, sets, p, v, o.trainPer, o.testPer)
			if err != nil {
				return err
			}
			tasks = append(tasks, task)
		}
	}
	var rows []row
	for _, task := range tasks {
		r, err := compare(ctx, o, task, weights)
		if err != nil {
			return fmt.Errorf("%s %s: %w", task.Pair.Name(), task.Variant.Name, err)
		}
		log.Printf("%-16s %-10s default %.4f (%s) probe %.4f grid %.4f (%s) (%.0f s)", task.Pair.Name(), task.Variant.Name,
			r.acc["default"], strings.Join(r.auto, ","), r.acc["probe"], r.gridTest, strings.Join(r.gridPick, ","), r.seconds)
		rows = append(rows, r)
	}
	md := markdown(o, rows)
	if len(o.screen) > 0 {
		results, err := screenTrials(ctx, o, sets, weights)
		if err != nil {
			return err
		}
		md += screenMarkdown(o, results)
	}
	fmt.Print(md)
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(o.out, []byte(md), 0o644)
}

// compare runs every setting o asks for on task for each seed.
func compare(ctx context.Context, o options, task fmtasks.Task, weights string) (row, error) {
	r := row{task: task, acc: map[string]float64{}}
	n := float64(len(o.seeds))
	for _, seed := range o.seeds {
		seen := map[string]bool{}
		get := func(s setting) (outcome, error) {
			out, err := runOnce(ctx, o, task, weights, seed, s)
			if !seen[s.name] {
				r.seconds += out.Seconds
				seen[s.name] = true
			}
			return out, err
		}
		var def outcome
		if o.runs("default") || o.runs("recipe-auto") || o.runs("grid") {
			var err error
			if def, err = get(setting{"default", func(*finetune.Config) {}}); err != nil {
				return r, err
			}
			r.acc["default"] += def.TestAccuracy / n
			r.auto = append(r.auto, def.BatchNorm)
			if def.EndedWithProbe {
				r.fellBack++
			}
		}
		if o.runs("recipe-auto") {
			// recipe: auto differs from the default only where it moves
			// the fine-tuning stage's freeze point.
			cfg, err := config(o, task, weights, seed, "default")
			if err != nil {
				return r, err
			}
			point, err := suggestedFreeze(ctx, cfg)
			if err != nil {
				return r, err
			}
			auto := def
			if point != cfg.Stages[1].Freeze {
				if auto, err = get(setting{"recipe-auto", func(c *finetune.Config) { c.Recipe = "auto" }}); err != nil {
					return r, err
				}
			}
			r.acc["recipe-auto"] += auto.TestAccuracy / n
		}
		if o.runs("probe") {
			probe, err := get(setting{"linear-probe", func(c *finetune.Config) { c.Recipe = "linear-probe" }})
			if err != nil {
				return r, err
			}
			r.acc["probe"] += probe.TestAccuracy / n
			if o.runs("default") {
				r.probeGaps = append(r.probeGaps, def.TestAccuracy-probe.TestAccuracy)
			}
		}
		for _, m := range modes {
			if !o.runs(m) {
				continue
			}
			out, err := get(withMode(m))
			if err != nil {
				return r, err
			}
			r.acc[m] += out.TestAccuracy / n
		}
		if !o.runs("grid") {
			continue
		}
		// The grid search picks by validation accuracy, then loss, as a
		// user without the test set would.
		var pick outcome
		pickName, seedMax := "", 0.0
		for _, m := range gridModes {
			for _, lr := range gridLRs {
				s := gridPoint(m, lr)
				if lr == finetune.Defaults().Train.LR {
					s = withMode(m)
				}
				out, err := get(s)
				if err != nil {
					return r, err
				}
				if pickName == "" || out.ValAccuracy > pick.ValAccuracy ||
					out.ValAccuracy == pick.ValAccuracy && out.ValLoss < pick.ValLoss {
					pick, pickName = out, gridPoint(m, lr).name
				}
				seedMax = math.Max(seedMax, out.TestAccuracy)
			}
		}
		r.gridTest += pick.TestAccuracy / n
		r.seedGaps = append(r.seedGaps, def.TestAccuracy-pick.TestAccuracy)
		r.gridMax += seedMax / n
		r.gridPick = append(r.gridPick, pickName)
	}
	return r, nil
}

// config is the default configuration with what the task forces
// changed and o's -set keys applied, writing to a run folder named key.
func config(o options, task fmtasks.Task, weights string, seed uint64, key string) (finetune.Config, error) {
	cfg := finetune.Defaults()
	cfg.Data.Train, cfg.Data.Test = task.Train(), task.Test()
	cfg.Data.ImageSize, cfg.Data.Resize = fmtasks.ImageSize, fmtasks.ImageSize
	cfg.Model.Arch, cfg.Model.Weights = o.arch, weights
	cfg.Output.Dir = filepath.Join(o.work, "recipe-runs", o.archDir(), filepath.Base(task.Root), fmt.Sprintf("seed%d", seed), key)
	cfg.Output.Checkpoint = "delta"
	cfg.Device = "cpu"
	cfg.Train.Precision = o.precision
	cfg.Seed = seed
	for _, kv := range o.sets {
		var err error
		if cfg, err = setKey(cfg, kv); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// suggestedFreeze is the freeze point recipe: auto would give cfg's
// fine-tuning stage: the shift measured as a run measures it, and the
// training split's size.
func suggestedFreeze(ctx context.Context, cfg finetune.Config) (string, error) {
	report, n, err := finetune.MeasureShift(ctx, cfg, cfg.Data.Train, nil)
	if err != nil {
		return "", err
	}
	point, _ := shift.SuggestFreeze(report, int(math.Round(float64(n)*(1-cfg.Data.ValSplit))))
	return point, nil
}

// runOnce runs the default configuration edited by s, or finds its
// outcome cached; a -set variant's outcomes are cached in a folder of
// their own.
func runOnce(ctx context.Context, o options, task fmtasks.Task, weights string, seed uint64, s setting) (outcome, error) {
	var out outcome
	key := strings.ReplaceAll(s.name, " ", "-")
	if o.precision != "auto" {
		key += "-" + o.precision
	}
	dir := filepath.Join(task.Root, "recipes", o.archDir())
	if o.variant != "" {
		dir = filepath.Join(dir, strings.NewReplacer("/", "_", " ", "+").Replace(o.variant))
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-seed%d.json", key, seed))
	err := fmtasks.Cached(path, &out, func() error {
		cfg, err := config(o, task, weights, seed, key)
		if err != nil {
			return err
		}
		s.edit(&cfg)
		res, err := finetune.Train(ctx, cfg, finetune.Options{})
		if err != nil {
			return fmt.Errorf("%s, seed %d: %w", s.name, seed, err)
		}
		res.Model.Close()
		out = outcome{ValAccuracy: res.Val.Accuracy, ValLoss: res.Val.Loss, TestAccuracy: res.Test.Accuracy,
			BatchNorm: res.BatchNorm, Seconds: res.Seconds, EndedWithProbe: res.EndedWithProbe}
		if res.ProbeAccuracy != nil {
			out.ProbeVal = *res.ProbeAccuracy
		}
		for _, e := range res.History {
			out.History = append(out.History, epoch{Stage: e.Stage, Epoch: e.Epoch, TrainLoss: e.TrainLoss,
				ValLoss: e.ValLoss, ValAcc: e.ValAccuracy, Best: e.Best})
		}
		log.Printf("  %s %s seed %d: val %.4f test %.4f probe val %.4f ended with probe %v (%.0f s)", filepath.Base(task.Root), s.name, seed,
			out.ValAccuracy, out.TestAccuracy, out.ProbeVal, out.EndedWithProbe, out.Seconds)
		return os.RemoveAll(cfg.Output.Dir)
	})
	return out, err
}

// archDir is the folder o's runs are cached in under a task's: none for
// resnet18, whose runs came first, the network's name for another.
func (o options) archDir() string {
	if o.arch == "resnet18" {
		return ""
	}
	return o.arch
}

// tolerance is how far below the grid's pick the default may land.
const tolerance = 0.01

// column is a setting's column of the table: its heading and the -only
// name of the setting whose test accuracy it shows.
type column struct{ head, name string }

// command is the command line that ran, to be copied.
func command() string {
	args := []string{"go", "run", "./bench/recipes"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " []{}*?$'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

func markdown(o options, rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Recipes without tuning: the default against fixed BatchNorm modes, the linear probe and a grid search\n\n")
	fmt.Fprintf(&b, "Written by `%s` (%s, seeds %v; the runs' training times add up to %.0f minutes on CPU).\n\n",
		command(), time.Now().Format("2006-01-02"), o.seeds, totalMinutes(rows))
	fmt.Fprintf(&b, "**Source model**: %s trained on Fashion-MNIST classes %v (%d images each, 32 pixels), standing in for ImageNet weights on an offline machine. ", o.arch, demo.SourceClasses, o.source)
	fmt.Fprintf(&b, "**Tasks**: two classes, %d training images per class (a fifth held out for validation) and %d test images per class from the test split, as they are or shifted (", o.trainPer, o.testPer)
	var about []string
	for _, v := range o.variants {
		about = append(about, v.Name+": "+v.About)
	}
	fmt.Fprintf(&b, "%s). ", strings.Join(about, "; "))
	d := finetune.Defaults()
	fmt.Fprintf(&b, "**Runs**: finetune's default configuration with only what the data forces changed (image size 32, %s, the source weights): ", o.arch)
	fmt.Fprintf(&b, "stages %s:%d:%s then %s:%d:%s at %g× the learning rate, AdamW lr %g, weight decay %g, label smoothing %g, dropout %g, augmentation (crop scale %v), early stopping on %s.",
		d.Stages[0].Name, d.Stages[0].Epochs, d.Stages[0].Freeze, d.Stages[1].Name, d.Stages[1].Epochs, d.Stages[1].Freeze, d.Stages[1].BackboneLRMult,
		d.Train.LR, d.Train.WeightDecay, d.Train.LabelSmoothing, d.Model.Head.Dropout, d.Augment.Scale, d.Train.EarlyStopping.Metric)
	if len(o.sets) > 0 {
		fmt.Fprintf(&b, " Every run with `%s` set.", strings.Join(o.sets, "`, `"))
	}
	fmt.Fprintf(&b, "\n\n")
	var cols []column
	if o.runs("default") {
		cols = append(cols, column{"default", "default"})
		fmt.Fprintf(&b, "- **default**: the configuration as it is: `train.batchnorm: auto` (its choice in brackets), `model.head.init: probe` (the head starts as the linear probe), `probe_fallback` (the probe's model is epoch 0: the run ends with it when no epoch beats it on validation by the early-stopping metric; a star counts the seeds where a run did), `train.max_time: auto` (on the CPU, the plan fits the stages into the larger of 2 minutes and one plain epoch).\n")
	}
	if o.runs("recipe-auto") {
		cols = append(cols, column{"recipe: auto", "recipe-auto"})
		fmt.Fprintf(&b, "- **recipe: auto**: the default with `recipe: auto`, the fine-tuning stage's freeze point chosen from the shift and the data size (shift.SuggestFreeze).\n")
	}
	var fixed []string
	for _, m := range modes {
		if o.runs(m) {
			cols = append(cols, column{m, m})
			fixed = append(fixed, m)
		}
	}
	if len(fixed) > 0 {
		fmt.Fprintf(&b, "- **%s**: the default with `train.batchnorm` fixed.\n", strings.Join(fixed, ", "))
	}
	if o.runs("probe") {
		cols = append(cols, column{"probe", "probe"})
		fmt.Fprintf(&b, "- **probe**: `recipe: linear-probe`, the logistic regression on the frozen backbone's features alone.\n")
	}
	grid := o.runs("grid")
	if grid {
		var lrs []string
		for _, lr := range gridLRs {
			lrs = append(lrs, fmt.Sprintf("%g", lr))
		}
		fmt.Fprintf(&b, "- **grid**: the default with `train.batchnorm` ∈ {%s} × `train.lr` ∈ {%s}, %d runs; the pick is the run with the best validation accuracy (then loss), as a grid search without the test set picks; its test accuracy is shown, and the best test accuracy of any grid run (which no search could know) beside it.\n",
			strings.Join(gridModes, ", "), strings.Join(lrs, ", "), len(gridModes)*len(gridLRs))
	}
	vsProbe := o.runs("default") && o.runs("probe")
	fmt.Fprintf(&b, "\nTest accuracy:\n\n| task | images |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %s |", c.head)
	}
	if vsProbe {
		fmt.Fprintf(&b, " default − probe |")
	}
	if grid {
		fmt.Fprintf(&b, " grid pick | grid pick's test | best grid test | default − pick |")
	}
	fmt.Fprintf(&b, "\n|---|---|%s", strings.Repeat("---:|", len(cols)))
	if vsProbe {
		fmt.Fprintf(&b, "---:|")
	}
	if grid {
		fmt.Fprintf(&b, "---|---:|---:|---:|")
	}
	fmt.Fprintf(&b, "\n")
	worst, worstMax, within := math.Inf(1), math.Inf(1), 0
	worstProbe, above := math.Inf(1), 0
	var sumPick, sumMax float64
	sums := map[string]float64{}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s |", r.task.Pair.Name(), r.task.Variant.Name)
		for _, c := range cols {
			fmt.Fprintf(&b, " %.4f", r.acc[c.name])
			if c.name == "default" {
				fmt.Fprintf(&b, " (%s)%s", strings.Join(r.auto, ", "), strings.Repeat("*", r.fellBack))
			}
			fmt.Fprintf(&b, " |")
			sums[c.name] += r.acc[c.name]
		}
		if vsProbe {
			diff := r.acc["default"] - r.acc["probe"]
			fmt.Fprintf(&b, " %+.4f |", diff)
			worstProbe = math.Min(worstProbe, diff)
			if diff > 0 {
				above++
			}
		}
		if grid {
			diff := r.acc["default"] - r.gridTest
			fmt.Fprintf(&b, " %s | %.4f | %.4f | %+.4f |", strings.Join(r.gridPick, "; "), r.gridTest, r.gridMax, diff)
			worst = math.Min(worst, diff)
			worstMax = math.Min(worstMax, r.acc["default"]-r.gridMax)
			if diff >= -tolerance {
				within++
			}
			sumPick += r.gridTest
			sumMax += r.gridMax
		}
		fmt.Fprintf(&b, "\n")
	}
	n := float64(len(rows))
	fmt.Fprintf(&b, "| mean | |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %.4f |", sums[c.name]/n)
	}
	if vsProbe {
		fmt.Fprintf(&b, " %+.4f |", (sums["default"]-sums["probe"])/n)
	}
	if grid {
		fmt.Fprintf(&b, " | %.4f | %.4f | %+.4f |", sumPick/n, sumMax/n, (sums["default"]-sumPick)/n)
	}
	fmt.Fprintf(&b, "\n\n")
	if vsProbe {
		fmt.Fprintf(&b, "The default beats the linear probe by %+.1f points on average and on %d of %d tasks (worst: %+.1f points).",
			100*(sums["default"]-sums["probe"])/n, above, len(rows), 100*worstProbe)
		fell := 0
		for _, r := range rows {
			fell += r.fellBack
		}
		fmt.Fprintf(&b, " %d of the default's %d runs ended with the probe's model (probe_fallback).", fell, len(rows)*len(o.seeds))
		if len(o.seeds) > 1 {
			seedWorst, runs, seedAbove := math.Inf(1), 0, 0
			for _, r := range rows {
				for _, gap := range r.probeGaps {
					runs++
					seedWorst = math.Min(seedWorst, gap)
					if gap > 0 {
						seedAbove++
					}
				}
			}
			fmt.Fprintf(&b, " Seed by seed: above the probe on %d of %d runs (worst: %+.1f points).", seedAbove, runs, 100*seedWorst)
		} else {
			fmt.Fprintf(&b, " One seed: each figure is one run against one probe, where %d test images make a point.", 2*o.testPer/100)
		}
		fmt.Fprintf(&b, "\n\n")
	}
	if !grid {
		return b.String()
	}
	fmt.Fprintf(&b, "The default is within %.0f point of the grid search's pick on %d of %d tasks (worst: %+.1f points); mean %+.1f points against the pick. Against the best grid run in hindsight, which no search could know: mean %+.1f, worst %+.1f points.\n",
		100*tolerance, within, len(rows), 100*worst, 100*(sums["default"]-sumPick)/n, 100*(sums["default"]-sumMax)/n, 100*worstMax)
	if len(o.seeds) > 1 {
		seedWorst, seedWorstAt, seedWithin, runs := math.Inf(1), "", 0, 0
		for _, r := range rows {
			for i, gap := range r.seedGaps {
				runs++
				if gap >= -tolerance {
					seedWithin++
				}
				if gap < seedWorst {
					seedWorst = gap
					seedWorstAt = fmt.Sprintf("%s %s, seed %d", r.task.Pair.Name(), r.task.Variant.Name, o.seeds[i])
				}
			}
		}
		fmt.Fprintf(&b, "\nSeed by seed, where one run against one pick decides and %d test images make a point, the default is within %.0f point on %d of %d (worst: %+.1f points, %s).\n",
			2*o.testPer/100, 100*tolerance, seedWithin, runs, 100*seedWorst, seedWorstAt)
	}
	return b.String()
}

func totalMinutes(rows []row) float64 {
	s := 0.0
	for _, r := range rows {
		s += r.seconds
	}
	return s / 60
}
