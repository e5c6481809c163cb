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
// Usage, from the repository root:
//
//	go run ./bench/recipes
//
// Each task takes about 7 minutes per seed on one core; two processes
// with OMP_NUM_THREADS=1 and one seed each (-seeds 42, -seeds 7) use two
// cores best, and a last run with -seeds 42,7 writes the table. Every
// run's outcome is cached in the work folder, so that last run only
// reads them.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/finetune-go/finetune/bench/internal/fmtasks"
	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/demo"
	"github.com/finetune-go/finetune/finetune/shift"
	"github.com/finetune-go/finetune/internal/fashionmnist"
)

type options struct {
	dataDir, work, out string
	// precision is every run's train.precision.
	precision         string
	trainPer, testPer int
	source            int
	pairs             []fmtasks.Pair
	variants          []fmtasks.Variant
	seeds             []uint64
}

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
	auto              []string
	def, recipeAuto   float64
	probe             float64
	fixed             map[string]float64
	gridPick          []string // per seed
	gridTest, gridMax float64
	// seedGaps is the default's test accuracy minus the grid pick's, per
	// seed.
	seedGaps []float64
	// seconds is the training time of the task's runs.
	seconds float64
}

func main() {
	var o options
	flag.StringVar(&o.dataDir, "data", fashionmnist.DefaultDir, "Fashion-MNIST's IDX files")
	flag.StringVar(&o.work, "work", fmtasks.WorkDir("bnauto"), "image folders, the source model and the runs (shared with bench/bnauto)")
	flag.StringVar(&o.out, "out", filepath.Join("docs", "recipes.md"), "results (markdown)")
	flag.StringVar(&o.precision, "precision", "auto", "train.precision of every run: auto, fp32 or bf16 (runs of an explicit precision are cached apart)")
	flag.IntVar(&o.trainPer, "train", 300, "training images per class of a task (a fifth is held out for validation)")
	flag.IntVar(&o.testPer, "test", 1000, "test images per class (from the test split)")
	flag.IntVar(&o.source, "source", 500, "images per class the source model trains on")
	pairs := flag.String("pairs", "0-6,2-4,5-7", "class pairs, comma separated")
	variants := flag.String("variants", "original,washed-out,inverted", "image variants, comma separated: "+fmtasks.VariantNames())
	seeds := flag.String("seeds", "42,7", "seeds, comma separated: accuracies are averaged over them")
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
	fmtasks.Main(func(ctx context.Context) error { return run(ctx, o) })
}

func run(ctx context.Context, o options) error {
	sets, weights, err := fmtasks.Prepare(ctx, o.dataDir, o.work, o.source)
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
			r.def, strings.Join(r.auto, ","), r.probe, r.gridTest, strings.Join(r.gridPick, ","), r.seconds)
		rows = append(rows, r)
	}
	md := markdown(o, rows)
	fmt.Print(md)
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(o.out, []byte(md), 0o644)
}

// compare runs every setting on task for each seed.
func compare(ctx context.Context, o options, task fmtasks.Task, weights string) (row, error) {
	r := row{task: task, fixed: map[string]float64{}}
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
		def, err := get(setting{"default", func(*finetune.Config) {}})
		if err != nil {
			return r, err
		}
		r.def += def.TestAccuracy / n
		r.auto = append(r.auto, def.BatchNorm)
		// recipe: auto differs from the default only where it moves the
		// fine-tuning stage's freeze point.
		point, err := suggestedFreeze(ctx, config(o, task, weights, seed, "default"))
		if err != nil {
			return r, err
		}
		auto := def
		if point != finetune.Defaults().Stages[1].Freeze {
			if auto, err = get(setting{"recipe-auto", func(c *finetune.Config) { c.Recipe = "auto" }}); err != nil {
				return r, err
			}
		}
		r.recipeAuto += auto.TestAccuracy / n
		probe, err := get(setting{"linear-probe", func(c *finetune.Config) { c.Recipe = "linear-probe" }})
		if err != nil {
			return r, err
		}
		r.probe += probe.TestAccuracy / n
		for _, m := range modes {
			out, err := get(withMode(m))
			if err != nil {
				return r, err
			}
			r.fixed[m] += out.TestAccuracy / n
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
// changed, writing to a run folder named key.
func config(o options, task fmtasks.Task, weights string, seed uint64, key string) finetune.Config {
	cfg := finetune.Defaults()
	cfg.Data.Train, cfg.Data.Test = task.Train(), task.Test()
	cfg.Data.ImageSize, cfg.Data.Resize = fmtasks.ImageSize, fmtasks.ImageSize
	cfg.Model.Arch, cfg.Model.Weights = "resnet18", weights
	cfg.Output.Dir = filepath.Join(o.work, "recipe-runs", filepath.Base(task.Root), fmt.Sprintf("seed%d", seed), key)
	cfg.Output.Checkpoint = "delta"
	cfg.Device = "cpu"
	cfg.Train.Precision = o.precision
	cfg.Seed = seed
	return cfg
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
// outcome cached.
func runOnce(ctx context.Context, o options, task fmtasks.Task, weights string, seed uint64, s setting) (outcome, error) {
	var out outcome
	key := strings.ReplaceAll(s.name, " ", "-")
	if o.precision != "auto" {
		key += "-" + o.precision
	}
	path := filepath.Join(task.Root, "recipes", fmt.Sprintf("%s-seed%d.json", key, seed))
	err := fmtasks.Cached(path, &out, func() error {
		cfg := config(o, task, weights, seed, key)
		s.edit(&cfg)
		res, err := finetune.Train(ctx, cfg, finetune.Options{})
		if err != nil {
			return fmt.Errorf("%s, seed %d: %w", s.name, seed, err)
		}
		res.Model.Close()
		out = outcome{ValAccuracy: res.Val.Accuracy, ValLoss: res.Val.Loss, TestAccuracy: res.Test.Accuracy,
			BatchNorm: res.BatchNorm, Seconds: res.Seconds}
		log.Printf("  %s %s seed %d: val %.4f test %.4f (%.0f s)", filepath.Base(task.Root), s.name, seed,
			out.ValAccuracy, out.TestAccuracy, out.Seconds)
		return os.RemoveAll(cfg.Output.Dir)
	})
	return out, err
}

// tolerance is how far below the grid's pick the default may land.
const tolerance = 0.01

func markdown(o options, rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Recipes without tuning: the default against fixed BatchNorm modes, the linear probe and a grid search\n\n")
	fmt.Fprintf(&b, "Written by `go run ./bench/recipes` (%s, seeds %v; the runs' training times add up to %.0f minutes on CPU).\n\n", time.Now().Format("2006-01-02"), o.seeds, totalMinutes(rows))
	fmt.Fprintf(&b, "**Source model**: resnet18 trained on Fashion-MNIST classes %v (%d images each, 32 pixels), standing in for ImageNet weights on an offline machine. ", demo.SourceClasses, o.source)
	fmt.Fprintf(&b, "**Tasks**: two classes, %d training images per class (a fifth held out for validation) and %d test images per class from the test split, as they are or shifted (", o.trainPer, o.testPer)
	var about []string
	for _, v := range o.variants {
		about = append(about, v.Name+": "+v.About)
	}
	fmt.Fprintf(&b, "%s). ", strings.Join(about, "; "))
	d := finetune.Defaults()
	fmt.Fprintf(&b, "**Runs**: finetune's default configuration with only what the data forces changed (image size 32, resnet18, the source weights): ")
	fmt.Fprintf(&b, "stages %s:%d:%s then %s:%d:%s at %g× the learning rate, AdamW lr %g, weight decay %g, label smoothing %g, dropout %g, augmentation, early stopping on %s.\n\n",
		d.Stages[0].Name, d.Stages[0].Epochs, d.Stages[0].Freeze, d.Stages[1].Name, d.Stages[1].Epochs, d.Stages[1].Freeze, d.Stages[1].BackboneLRMult,
		d.Train.LR, d.Train.WeightDecay, d.Train.LabelSmoothing, d.Model.Head.Dropout, d.Train.EarlyStopping.Metric)
	fmt.Fprintf(&b, "- **default**: the configuration as it is: `train.batchnorm: auto` (its choice in brackets), `model.head.init: probe` (the head starts as the linear probe), `probe_fallback` (the run ends with the probe's model when the probe beats the best epoch on validation).\n")
	fmt.Fprintf(&b, "- **recipe: auto**: the default with `recipe: auto`, the fine-tuning stage's freeze point chosen from the shift and the data size (shift.SuggestFreeze).\n")
	fmt.Fprintf(&b, "- **frozen, adapt, train, legacy**: the default with `train.batchnorm` fixed.\n")
	fmt.Fprintf(&b, "- **probe**: `recipe: linear-probe`, the logistic regression on the frozen backbone's features alone.\n")
	var lrs []string
	for _, lr := range gridLRs {
		lrs = append(lrs, fmt.Sprintf("%g", lr))
	}
	fmt.Fprintf(&b, "- **grid**: the default with `train.batchnorm` ∈ {%s} × `train.lr` ∈ {%s}, %d runs; the pick is the run with the best validation accuracy (then loss), as a grid search without the test set picks; its test accuracy is shown, and the best test accuracy of any grid run (which no search could know) beside it.\n\n",
		strings.Join(gridModes, ", "), strings.Join(lrs, ", "), len(gridModes)*len(gridLRs))
	fmt.Fprintf(&b, "Test accuracy:\n\n")
	fmt.Fprintf(&b, "| task | images | default | recipe: auto | frozen | adapt | train | legacy | probe | grid pick | grid pick's test | best grid test | default − pick |\n")
	fmt.Fprintf(&b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n")
	worst, worstMax, within := math.Inf(1), math.Inf(1), 0
	var sumDef, sumAuto, sumProbe, sumPick, sumMax float64
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %.4f (%s) | %.4f |", r.task.Pair.Name(), r.task.Variant.Name, r.def, strings.Join(r.auto, ", "), r.recipeAuto)
		for _, m := range modes {
			fmt.Fprintf(&b, " %.4f |", r.fixed[m])
		}
		diff := r.def - r.gridTest
		fmt.Fprintf(&b, " %.4f | %s | %.4f | %.4f | %+.4f |\n", r.probe, strings.Join(r.gridPick, "; "), r.gridTest, r.gridMax, diff)
		worst = math.Min(worst, diff)
		worstMax = math.Min(worstMax, r.def-r.gridMax)
		if diff >= -tolerance {
			within++
		}
		sumDef += r.def
		sumAuto += r.recipeAuto
		sumProbe += r.probe
		sumPick += r.gridTest
		sumMax += r.gridMax
	}
	n := float64(len(rows))
	fmt.Fprintf(&b, "| mean | | %.4f | %.4f |", sumDef/n, sumAuto/n)
	for _, m := range modes {
		sum := 0.0
		for _, r := range rows {
			sum += r.fixed[m]
		}
		fmt.Fprintf(&b, " %.4f |", sum/n)
	}
	fmt.Fprintf(&b, " %.4f | | %.4f | %.4f | %+.4f |\n\n", sumProbe/n, sumPick/n, sumMax/n, (sumDef-sumPick)/n)
	fmt.Fprintf(&b, "The default is within %.0f point of the grid search's pick on %d of %d tasks (worst: %+.1f points); mean %+.1f points against the pick. Against the best grid run in hindsight, which no search could know: mean %+.1f, worst %+.1f points.\n",
		100*tolerance, within, len(rows), 100*worst, 100*(sumDef-sumPick)/n, 100*(sumDef-sumMax)/n, 100*worstMax)
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
