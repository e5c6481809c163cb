// Command bnauto is the experiment behind train.batchnorm: auto: on real
// datasets with and without a domain shift it measures the shift a
// pretrained backbone sees (package finetune/shift), trains a head on the
// frozen backbone with the stored BatchNorm statistics (frozen) and with
// statistics re-estimated on the training images (adapt), and finds the
// shift threshold that best separates the datasets where adapt wins from
// those where frozen does. It writes the results to bench/bnauto/RESULTS.md.
//
// The source model stands in for ImageNet weights, which an offline
// machine cannot download: a resnet18 trained on 8 of Fashion-MNIST's
// classes, as the built-in demo trains it. The datasets are pairs of
// Fashion-MNIST classes, as they are and as shifted variants written as
// image folders: dimmed, washed out, colour-tinted and inverted.
//
// Usage, from the repository root:
//
//	go run ./bench/bnauto
//
// On two cores the source model takes about 6 minutes and each seed's
// trainings about 5 (-seeds 42 halves the rest). Measurements and
// accuracies are cached in the work folder, so a second run only rewrites
// the table.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/shift"
	"github.com/finetune-go/finetune/internal/fashionmnist"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/finetune-go/finetune/vision/models"
)

// sourceClasses are the demo's source classes (finetune/demo).
var sourceClasses = []int{1, 2, 3, 4, 5, 7, 8, 9}

// pairs are the target tasks: two held-out classes (the demo's task) and
// pairs of classes the source model has seen.
var pairs = [][2]int{{0, 6}, {2, 4}, {5, 7}, {3, 8}}

// variant is a transform of the grey images into RGB ones.
type variant struct {
	name string
	rgb  func(v uint8) color.NRGBA
}

var variants = []variant{
	{"original", func(v uint8) color.NRGBA { return color.NRGBA{v, v, v, 255} }},
	{"dimmed", func(v uint8) color.NRGBA { g := uint8(float64(v) * 0.6); return color.NRGBA{g, g, g, 255} }},
	{"washed-out", func(v uint8) color.NRGBA { g := uint8(110 + float64(v)*0.35); return color.NRGBA{g, g, g, 255} }},
	{"tinted", func(v uint8) color.NRGBA {
		f := float64(v)
		return color.NRGBA{uint8(f), uint8(30 + f*0.55), uint8(90 + f*0.25), 255}
	}},
	{"inverted", func(v uint8) color.NRGBA { return color.NRGBA{255 - v, 255 - v, 255 - v, 255} }},
}

type options struct {
	dataDir, work, out      string
	trainPerClass, testPer  int
	epochs, measure, source int
	seeds                   []uint64
}

// result is one dataset's line of the table.
type result struct {
	pair    [2]int
	variant string
	report  *shift.Report
	// frozen and adapted are the test accuracies of the two modes,
	// averaged over the seeds.
	frozen, adapted float64
	seconds         float64
}

func (r result) name() string {
	return fashionmnist.Classes[r.pair[0]] + "/" + fashionmnist.Classes[r.pair[1]]
}

// statistic is a candidate summary of a Report for the decision.
type statistic struct {
	name string
	of   func(*shift.Report) float64
}

var statistics = []statistic{
	{"Report.Shift: mean over stem–layer3", func(r *shift.Report) float64 { return r.Shift() }},
	{"mean over BatchNorm layers", func(r *shift.Report) float64 {
		sum := 0.0
		for _, l := range r.Layers {
			sum += l.Divergence
		}
		return sum / float64(len(r.Layers))
	}},
	{"largest stage", func(r *shift.Report) float64 {
		m := 0.0
		for _, s := range r.Stages {
			m = math.Max(m, s.Divergence)
		}
		return m
	}},
	{"mean over stages", func(r *shift.Report) float64 {
		sum := 0.0
		for _, s := range r.Stages {
			sum += s.Divergence
		}
		return sum / float64(len(r.Stages))
	}},
	{"stem", func(r *shift.Report) float64 { return r.Stages[0].Divergence }},
}

func main() {
	var o options
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	flag.StringVar(&o.dataDir, "data", fashionmnist.DefaultDir, "Fashion-MNIST's IDX files")
	flag.StringVar(&o.work, "work", filepath.Join(cache, "finetune", "bnauto"), "image folders, the source model and the runs")
	flag.StringVar(&o.out, "out", filepath.Join("bench", "bnauto", "RESULTS.md"), "results table (markdown)")
	flag.IntVar(&o.trainPerClass, "train", 300, "training images per class of a target task")
	flag.IntVar(&o.testPer, "test", 500, "test images per class (from the test split)")
	flag.IntVar(&o.epochs, "epochs", 6, "epochs of head training")
	flag.IntVar(&o.measure, "measure", 256, "training images the shift is measured on")
	flag.IntVar(&o.source, "source", 500, "images per class the source model trains on")
	seeds := flag.String("seeds", "42,7", "seeds of the trainings, comma separated: accuracies are averaged over them")
	flag.Parse()
	for _, f := range strings.Split(*seeds, ",") {
		seed, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			log.Fatalf("-seeds: %v", err)
		}
		o.seeds = append(o.seeds, seed)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, o options) error {
	train, err := fashionmnist.Read(o.dataDir, "train")
	if err != nil {
		return err
	}
	test, err := fashionmnist.Read(o.dataDir, "t10k")
	if err != nil {
		return err
	}
	weights, err := sourceModel(ctx, o, train)
	if err != nil {
		return err
	}
	backbone, err := models.New("resnet18", 0)
	if err != nil {
		return err
	}
	defer nn.Free(backbone)
	if _, err := models.LoadWeights(ctx, backbone, weights, nil); err != nil {
		return err
	}
	nn.Train(backbone, false)
	var results []result
	for _, p := range pairs {
		for _, v := range variants {
			r, err := dataset(ctx, o, train, test, p, v, backbone, weights)
			if err != nil {
				return fmt.Errorf("%v %s: %w", p, v.name, err)
			}
			log.Printf("%-20s %-10s shift %.4f (stages %s) frozen %.4f adapt %.4f (%.0f s)", r.name(), r.variant,
				r.report.Shift(), stagesText(r.report), r.frozen, r.adapted, r.seconds)
			results = append(results, r)
		}
	}
	md := resultsMarkdown(o, results)
	fmt.Print(md)
	return os.WriteFile(o.out, []byte(md), 0o644)
}

func stagesText(r *shift.Report) string {
	var parts []string
	for _, s := range r.Stages {
		parts = append(parts, fmt.Sprintf("%.3f", s.Divergence))
	}
	return strings.Join(parts, " ")
}

// sourceModel trains the demo's source model (finetune/demo: resnet18 on
// the 8 source classes, 4 epochs at 32 pixels) or finds it cached.
func sourceModel(ctx context.Context, o options, train *fashionmnist.Set) (string, error) {
	path := filepath.Join(o.work, fmt.Sprintf("source-resnet18-%d.safetensors", o.source))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	dir := filepath.Join(o.work, fmt.Sprintf("source-%d", o.source))
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if _, err := train.WriteFolder(dir, sourceClasses, o.source); err != nil {
		return "", err
	}
	log.Printf("training the source model on %s", dir)
	cfg := finetune.Defaults()
	cfg.Data.Train, cfg.Data.ValSplit = dir, 0.1
	cfg.Data.ImageSize, cfg.Data.Resize = 32, 32
	cfg.Model.Arch, cfg.Model.Weights = "resnet18", "none"
	cfg.Model.Head = finetune.HeadConfig{Pooling: "avg", Hidden: []int{}}
	cfg.Train.BatchNorm, cfg.Train.LR, cfg.Train.LabelSmoothing = "train", 2e-3, 0
	cfg.Train.EarlyStopping.Patience = 0
	cfg.Augment = finetune.AugmentConfig{Enabled: true, Scale: [2]float64{0.7, 1}, Ratio: [2]float64{0.9, 1.1}, HFlip: 0.5}
	cfg.Stages = []finetune.Stage{{Name: "source", Epochs: 4, Freeze: "none", BackboneLRMult: 1}}
	cfg.Output.Dir = filepath.Join(o.work, "source-run")
	cfg.Output.Checkpoint = "full"
	cfg.Device = "cpu"
	res, err := finetune.Train(ctx, cfg, finetune.Options{})
	if err != nil {
		return "", fmt.Errorf("source model: %w", err)
	}
	defer nn.Free(res.Model)
	s := torch.NewScope()
	defer s.Close()
	md := map[string]string{"source": fmt.Sprint("Fashion-MNIST classes ", sourceClasses)}
	if err := nn.WriteSafetensors(path, nn.StateDict(res.Model.Backbone), md); err != nil {
		return "", err
	}
	log.Printf("source model: val accuracy %.4f", res.Val.Accuracy)
	return path, nil
}

// writeVariant writes up to perClass images of each class of pair from
// set, transformed by v, as dst/<class>/<n>.png.
func writeVariant(set *fashionmnist.Set, dst string, pair [2]int, perClass int, v variant) error {
	counts := map[int]int{}
	for i, l := range set.Labels {
		c := int(l)
		if (c != pair[0] && c != pair[1]) || counts[c] >= perClass {
			continue
		}
		img := image.NewNRGBA(image.Rect(0, 0, fashionmnist.Side, fashionmnist.Side))
		for p, g := range set.Images[i] {
			img.SetNRGBA(p%fashionmnist.Side, p/fashionmnist.Side, v.rgb(g))
		}
		dir := filepath.Join(dst, fashionmnist.Classes[c])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%05d.png", i)))
		if err != nil {
			return err
		}
		if err := png.Encode(f, img); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		counts[c]++
	}
	return nil
}

// dataset writes one task's folders (once), measures its shift and trains
// a head with each BatchNorm mode.
func dataset(ctx context.Context, o options, train, test *fashionmnist.Set, pair [2]int, v variant,
	backbone *models.ResNet, weights string) (result, error) {
	start := time.Now()
	r := result{pair: pair, variant: v.name}
	root := filepath.Join(o.work, "data", fmt.Sprintf("%d-%d-%s-%d-%d", pair[0], pair[1], v.name, o.trainPerClass, o.testPer))
	trainDir, testDir := filepath.Join(root, "train"), filepath.Join(root, "test")
	marker := filepath.Join(root, "complete")
	if _, err := os.Stat(marker); err != nil {
		if err := os.RemoveAll(root); err != nil {
			return r, err
		}
		if err := writeVariant(train, trainDir, pair, o.trainPerClass, v); err != nil {
			return r, err
		}
		if err := writeVariant(test, testDir, pair, o.testPer, v); err != nil {
			return r, err
		}
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return r, err
		}
	}
	// Finished measurements and trainings are kept, so the table can be
	// rewritten (after changing a statistic, say) without training again.
	err := cached(filepath.Join(root, fmt.Sprintf("shift-%d.json", o.measure)), &r.report, func() error {
		var err error
		r.report, err = measure(ctx, o, backbone, trainDir)
		return err
	})
	if err != nil {
		return r, err
	}
	for _, seed := range o.seeds {
		var acc struct{ Frozen, Adapt float64 }
		err := cached(filepath.Join(root, fmt.Sprintf("accuracy-%d-%d.json", o.epochs, seed)), &acc, func() error {
			var err error
			if acc.Frozen, err = trainHead(ctx, o, "frozen", seed, root, weights); err != nil {
				return err
			}
			acc.Adapt, err = trainHead(ctx, o, "adapt", seed, root, weights)
			return err
		})
		if err != nil {
			return r, err
		}
		r.frozen += acc.Frozen / float64(len(o.seeds))
		r.adapted += acc.Adapt / float64(len(o.seeds))
	}
	r.seconds = time.Since(start).Seconds()
	return r, nil
}

// cached decodes path into v, or runs compute and encodes v into path.
func cached(path string, v any, compute func() error) error {
	if raw, err := os.ReadFile(path); err == nil {
		return json.Unmarshal(raw, v)
	}
	if err := compute(); err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o644)
}

// trainHead trains the head on the frozen backbone in BatchNorm mode and
// returns the test accuracy.
func trainHead(ctx context.Context, o options, mode string, seed uint64, root, weights string) (float64, error) {
	cfg := finetune.Defaults()
	cfg.Data.Train, cfg.Data.Test = filepath.Join(root, "train"), filepath.Join(root, "test")
	cfg.Data.ImageSize, cfg.Data.Resize = 32, 32
	cfg.Model.Arch, cfg.Model.Weights = "resnet18", weights
	cfg.Augment.Enabled = false
	cfg.Train.BatchNorm = mode
	cfg.Stages = []finetune.Stage{{Name: "head", Epochs: o.epochs, Freeze: "all", BackboneLRMult: 0.1}}
	cfg.Output.Dir = filepath.Join(o.work, "runs", fmt.Sprintf("%s-seed%d", filepath.Base(root), seed), mode)
	cfg.Output.Checkpoint = "delta"
	cfg.Device = "cpu"
	cfg.Seed = seed
	res, err := finetune.Train(ctx, cfg, finetune.Options{})
	if err != nil {
		return 0, fmt.Errorf("%s, seed %d: %w", mode, seed, err)
	}
	nn.Free(res.Model)
	return res.Test.Accuracy, nil
}

// measure measures the shift on a shuffled sample of the training images
// with evaluation transforms, as train.batchnorm: auto does.
func measure(ctx context.Context, o options, backbone *models.ResNet, dir string) (*shift.Report, error) {
	set, err := data.ImageFolder(dir)
	if err != nil {
		return nil, err
	}
	pipe, err := data.EvalPipeline(32, 32)
	if err != nil {
		return nil, err
	}
	idx := make([]int, len(set.Samples))
	for i := range idx {
		idx[i] = i
	}
	loader, err := data.NewBatchLoader(&data.Loader{Dataset: set, Pipeline: pipe}, idx,
		data.BatchOptions{BatchSize: 64, Shuffle: true, Seed: 1, CacheBytes: -1})
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	return shift.Measure(ctx, backbone, func(yield func(*torch.Tensor, error) bool) {
		for b, err := range loader.Epoch(ctx, 0) {
			if err != nil {
				yield(nil, err)
				return
			}
			ok := yield(b.Images, nil)
			b.Free()
			if !ok {
				return
			}
		}
	}, o.measure)
}

// maxGain returns the largest accuracy one mode gains over the other:
// frozen over adapt, or adapt over frozen.
func maxGain(rs []result, frozen bool) float64 {
	m := 0.0
	for _, r := range rs {
		d := r.adapted - r.frozen
		if frozen {
			d = -d
		}
		m = math.Max(m, d)
	}
	return m
}

// split is a threshold rule's outcome for one statistic.
type split struct {
	stat      statistic
	threshold float64
	// lost is the test accuracy lost, summed over the datasets, by
	// choosing with the rule instead of always taking the better mode.
	lost float64
	// wrong counts the datasets where the rule picks the worse mode by
	// more than the tie margin.
	wrong int
}

// tieMargin is the accuracy difference below which the two modes count
// as equally good: about one standard error of a 1,000-image test set.
const tieMargin = 0.01

// cost scores the rule "adapt when st reaches t" over rs.
func cost(rs []result, st statistic, t float64) split {
	s := split{stat: st, threshold: t}
	for _, r := range rs {
		got, other := r.frozen, r.adapted
		if st.of(r.report) >= t {
			got, other = r.adapted, r.frozen
		}
		s.lost += math.Max(0, other-got)
		if other-got > tieMargin {
			s.wrong++
		}
	}
	return s
}

// splits scores a threshold between each two neighbouring values of st
// (their geometric mean), below all and above all.
func splits(rs []result, st statistic) []split {
	var cuts []float64
	for _, r := range rs {
		cuts = append(cuts, st.of(r.report))
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	out := []split{cost(rs, st, cuts[0]/2)}
	for k := 1; k < len(cuts); k++ {
		out = append(out, cost(rs, st, math.Sqrt(cuts[k-1]*cuts[k])))
	}
	return append(out, cost(rs, st, cuts[len(cuts)-1]*2))
}

// bestSplit returns the split of st that loses the least accuracy (the
// lowest threshold on a tie).
func bestSplit(rs []result, st statistic) split {
	all := splits(rs, st)
	best := all[0]
	for _, s := range all[1:] {
		if s.lost < best.lost-1e-12 {
			best = s
		}
	}
	return best
}

func resultsMarkdown(o options, rs []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# train.batchnorm: auto — the experiment\n\n")
	fmt.Fprintf(&b, "Written by `go run ./bench/bnauto` (%s). ", time.Now().Format("2006-01-02"))
	fmt.Fprintf(&b, "Source model: resnet18 trained on Fashion-MNIST classes %v (%d images each, 4 epochs, 32 pixels: the demo's stand-in for ImageNet weights). ", sourceClasses, o.source)
	fmt.Fprintf(&b, "Each task: two classes, %d training images per class (a fifth held out for validation), %d test images per class from the test split, ", o.trainPerClass, o.testPer)
	fmt.Fprintf(&b, "as they are or transformed (dimmed ×0.6, washed out 110+0.35·v, tinted (v, 30+0.55v, 90+0.25v), inverted). ")
	fmt.Fprintf(&b, "Shift: finetune/shift.Measure on %d training images (symmetric KL per channel between the data's and the stored BatchNorm statistics, mean over channels, then over each stage's layers). ", o.measure)
	fmt.Fprintf(&b, "Training: the head alone (linear, avg pooling) on the frozen backbone, %d epochs, AdamW, finetune's defaults otherwise, no augmentation; frozen keeps the stored BatchNorm statistics, adapt re-estimates them on the training images first (AdaBN). Accuracy on the test images, averaged over the seeds %v (a seed also draws the validation split).\n\n", o.epochs, o.seeds)
	fmt.Fprintf(&b, "| task | images | shift | stem | layer1 | layer2 | layer3 | layer4 | frozen | adapt | adapt − frozen |\n")
	fmt.Fprintf(&b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %s | %.4f |", r.name(), r.variant, r.report.Shift())
		for _, s := range r.report.Stages {
			fmt.Fprintf(&b, " %.4f |", s.Divergence)
		}
		fmt.Fprintf(&b, " %.4f | %.4f | %+.4f |\n", r.frozen, r.adapted, r.adapted-r.frozen)
	}
	fmt.Fprintf(&b, "\n## The threshold\n\n")
	fmt.Fprintf(&b, "For each candidate statistic, the threshold (adapt when the statistic reaches it) that loses the least test accuracy summed over the tasks, against always picking the better mode; ")
	fmt.Fprintf(&b, "a threshold between two measured values is their geometric mean. Wrong: tasks where the rule picks a mode worse by more than %.2f.\n\n", tieMargin)
	fmt.Fprintf(&b, "| statistic | threshold | accuracy lost (sum) | wrong | always frozen loses | always adapt loses |\n|---|---:|---:|---:|---:|---:|\n")
	var lostFrozen, lostAdapt float64
	for _, r := range rs {
		lostFrozen += math.Max(0, r.adapted-r.frozen)
		lostAdapt += math.Max(0, r.frozen-r.adapted)
	}
	var bests []split
	for _, st := range statistics {
		s := bestSplit(rs, st)
		bests = append(bests, s)
		fmt.Fprintf(&b, "| %s | %.4g | %.4f | %d | %.4f | %.4f |\n", st.name, s.threshold, s.lost, s.wrong, lostFrozen, lostAdapt)
	}
	chosen := bests[0]
	for _, s := range bests[1:] {
		if s.lost < chosen.lost-1e-12 {
			chosen = s
		}
	}
	fmt.Fprintf(&b, "\nBest: %s, threshold %.4g. The rule of shift.ChooseBN is adapt when Report.Shift reaches shift.Threshold (%.4g); every threshold on it, with what it loses:\n\n",
		chosen.stat.name, chosen.threshold, shift.Threshold)
	fmt.Fprintf(&b, "| threshold | accuracy lost (sum) | wrong |\n|---:|---:|---:|\n")
	for _, s := range splits(rs, statistics[0]) {
		fmt.Fprintf(&b, "| %.4g | %.4f | %d |\n", s.threshold, s.lost, s.wrong)
	}
	fmt.Fprintf(&b, "\nWith shift.Threshold = %.4g, shift.ChooseBN picks:\n\n", shift.Threshold)
	for _, r := range rs {
		mode, _ := shift.ChooseBN(r.report)
		best := "adapt"
		if r.frozen > r.adapted {
			best = "frozen"
		}
		fmt.Fprintf(&b, "- %s, %s (shift %.3f): %s (better here: %s, by %.4f)\n", r.name(), r.variant, r.report.Shift(), mode, best, math.Abs(r.adapted-r.frozen))
	}
	s := cost(rs, statistics[0], shift.Threshold)
	fmt.Fprintf(&b, "\nAccuracy lost with it: %.4f summed over the %d tasks (always frozen: %.4f, always adapt: %.4f); wrong by more than %.2f: %d.\n",
		s.lost, len(rs), lostFrozen, lostAdapt, tieMargin, s.wrong)
	lo, hi, unshifted := math.Inf(1), 0.0, 0.0
	for _, r := range rs {
		if r.variant == "original" {
			l4 := r.report.Stages[4].Divergence
			lo, hi, unshifted = math.Min(lo, l4), math.Max(hi, l4), math.Max(unshifted, r.report.Shift())
		}
	}
	flatLo, flatHi := s.lost, s.lost
	for _, sp := range splits(rs, statistics[0]) {
		if sp.threshold >= unshifted && sp.threshold <= shift.Threshold {
			flatLo, flatHi = math.Min(flatLo, sp.lost), math.Max(flatHi, sp.lost)
		}
	}
	fmt.Fprintf(&b, "\n## Reading\n\n")
	best := ""
	if chosen.stat.name == statistics[0].name {
		best = ", and separates the tasks best of the statistics tried"
	}
	fmt.Fprintf(&b, "- layer4's statistics move with the classes themselves: the unshifted tasks measure %.2f to %.2f there, as much as shifted tasks measure in the earlier stages. Report.Shift therefore averages the stem and layer1 to layer3%s.\n", lo, hi, best)
	fmt.Fprintf(&b, "- The costs are lopsided: adapting where keeping the statistics is better loses at most %.1f points (%.4f in all); keeping them where adapting is better loses up to %.0f points (%.4f in all). A threshold a little too low costs little; one too high costs much.\n",
		100*maxGain(rs, true), lostAdapt, 100*maxGain(rs, false), lostFrozen)
	fmt.Fprintf(&b, "- Near the threshold the two modes differ by about a point, close to the noise of a 1,000-image test set: every threshold from the largest shift of an unshifted task (%.3g) up to %.3g loses %.4f to %.4f.\n",
		unshifted, shift.Threshold, flatLo, flatHi)
	fmt.Fprintf(&b, "- The source model is small and was trained on 28-pixel grey images; the threshold is calibrated on it, and with ImageNet weights the scale of the divergences may differ.\n")
	return b.String()
}
