// Package fmtasks makes the target tasks of the recipe experiments under
// bench/: pairs of Fashion-MNIST classes written as image folders, as
// they are and as shifted variants, and the source model that stands in
// for ImageNet weights on an offline machine.
package fmtasks

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/finetune-go/finetune/finetune/demo"
	"github.com/finetune-go/finetune/internal/fashionmnist"
)

// ImageSize is the side the experiments train at: Fashion-MNIST's 28
// pixels, padded by the resize to what resnet18's strides keep.
const ImageSize = 32

// Pair is a target task: two classes, by index.
type Pair [2]int

// Name is "class/class".
func (p Pair) Name() string {
	return fashionmnist.Classes[p[0]] + "/" + fashionmnist.Classes[p[1]]
}

// Pairs are the target tasks: two classes the source model never saw
// (the demo's task) and pairs of classes it has seen.
var Pairs = []Pair{{0, 6}, {2, 4}, {5, 7}, {3, 8}}

// ParsePairs reads "0-6,2-4".
func ParsePairs(s string) ([]Pair, error) {
	var out []Pair
	for _, f := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(f), "-")
		x, err1 := strconv.Atoi(a)
		y, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || x < 0 || y < 0 || x >= len(fashionmnist.Classes) || y >= len(fashionmnist.Classes) || x == y {
			return nil, fmt.Errorf("pair %q: want two different class indices 0–9 as A-B", f)
		}
		out = append(out, Pair{x, y})
	}
	return out, nil
}

// Variant turns Fashion-MNIST's grey levels into RGB pixels.
type Variant struct {
	Name string
	// About says what the transform is, for a results table.
	About string
	RGB   func(v uint8) color.NRGBA
}

// Variants are the images as they are and four shifts of them.
var Variants = []Variant{
	{"original", "grey", func(v uint8) color.NRGBA { return color.NRGBA{v, v, v, 255} }},
	{"dimmed", "×0.6", func(v uint8) color.NRGBA { g := uint8(float64(v) * 0.6); return color.NRGBA{g, g, g, 255} }},
	{"washed-out", "110+0.35·v", func(v uint8) color.NRGBA { g := uint8(110 + float64(v)*0.35); return color.NRGBA{g, g, g, 255} }},
	{"tinted", "(v, 30+0.55v, 90+0.25v)", func(v uint8) color.NRGBA {
		f := float64(v)
		return color.NRGBA{uint8(f), uint8(30 + f*0.55), uint8(90 + f*0.25), 255}
	}},
	{"inverted", "255−v", func(v uint8) color.NRGBA { return color.NRGBA{255 - v, 255 - v, 255 - v, 255} }},
}

// VariantNames lists the variants' names, comma separated.
func VariantNames() string {
	var names []string
	for _, v := range Variants {
		names = append(names, v.Name)
	}
	return strings.Join(names, ", ")
}

// ParseVariants reads "original,inverted".
func ParseVariants(s string) ([]Variant, error) {
	var out []Variant
	for _, f := range strings.Split(s, ",") {
		name := strings.TrimSpace(f)
		i := -1
		for k, v := range Variants {
			if v.Name == name {
				i = k
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("variant %q: want one of %s", name, VariantNames())
		}
		out = append(out, Variants[i])
	}
	return out, nil
}

// Sets are Fashion-MNIST's two splits.
type Sets struct{ Train, Test *fashionmnist.Set }

// ReadSets reads both splits from dir.
func ReadSets(dir string) (Sets, error) {
	train, err := fashionmnist.Read(dir, "train")
	if err != nil {
		return Sets{}, err
	}
	test, err := fashionmnist.Read(dir, "t10k")
	if err != nil {
		return Sets{}, err
	}
	return Sets{train, test}, nil
}

// SourceModel trains the demo's source model (arch, resnet18 in the
// demo, on demo.SourceClasses, perClass images each, 4 epochs at 32
// pixels) into work, or finds it there, and returns its path.
func SourceModel(ctx context.Context, work string, train *fashionmnist.Set, perClass int, arch string) (string, error) {
	path := filepath.Join(work, fmt.Sprintf("source-%s-%d.safetensors", arch, perClass))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	dir := filepath.Join(work, fmt.Sprintf("source-%d", perClass))
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if _, err := train.WriteFolder(dir, demo.SourceClasses, perClass); err != nil {
		return "", err
	}
	log.Printf("training the source model (%s) on %s", arch, dir)
	cfg := demo.SourceConfig(dir, filepath.Join(work, "source-run-"+arch), arch, ImageSize, 4, "cpu")
	acc, err := demo.TrainSource(ctx, cfg, path, nil)
	if err != nil {
		return "", fmt.Errorf("source model: %w", err)
	}
	log.Printf("source model: val accuracy %.4f", acc)
	return path, nil
}

// Task is one target task's image folders.
type Task struct {
	Pair    Pair
	Variant Variant
	// Root holds train/, test/ and whatever an experiment caches.
	Root string
}

// Train is the task's training folder.
func (t Task) Train() string { return filepath.Join(t.Root, "train") }

// Test is the task's test folder.
func (t Task) Test() string { return filepath.Join(t.Root, "test") }

// Write writes the task's folders under work (once: a marker file says
// they are complete): trainPer images per class from the training split
// and testPer from the test split, transformed by v.
func Write(work string, sets Sets, p Pair, v Variant, trainPer, testPer int) (Task, error) {
	t := Task{Pair: p, Variant: v,
		Root: filepath.Join(work, "data", fmt.Sprintf("%d-%d-%s-%d-%d", p[0], p[1], v.Name, trainPer, testPer))}
	marker := filepath.Join(t.Root, "complete")
	if _, err := os.Stat(marker); err == nil {
		return t, nil
	}
	if err := os.RemoveAll(t.Root); err != nil {
		return t, err
	}
	if err := writeVariant(sets.Train, t.Train(), p, trainPer, v); err != nil {
		return t, err
	}
	if err := writeVariant(sets.Test, t.Test(), p, testPer, v); err != nil {
		return t, err
	}
	return t, os.WriteFile(marker, nil, 0o644)
}

// writeVariant writes up to perClass images of each class of pair from
// set, transformed by v, as dst/<class>/<n>.png.
func writeVariant(set *fashionmnist.Set, dst string, pair Pair, perClass int, v Variant) error {
	counts := map[int]int{}
	for i, l := range set.Labels {
		c := int(l)
		if (c != pair[0] && c != pair[1]) || counts[c] >= perClass {
			continue
		}
		img := image.NewNRGBA(image.Rect(0, 0, fashionmnist.Side, fashionmnist.Side))
		for p, g := range set.Images[i] {
			img.SetNRGBA(p%fashionmnist.Side, p/fashionmnist.Side, v.RGB(g))
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

// Cached decodes path into v, or runs compute and encodes v into path:
// finished measurements and trainings are kept, so a table can be
// rewritten without training again.
func Cached(path string, v any, compute func() error) error {
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
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o644)
}

// WorkDir is the experiments' default work folder.
func WorkDir(name string) string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "finetune", name)
}

// ParseSeeds reads "42,7".
func ParseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		seed, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, seed)
	}
	return out, nil
}

// Main runs an experiment until it ends or the user interrupts it, and
// exits with its error.
func Main(run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		log.Fatal(err)
	}
}

// Prepare reads Fashion-MNIST from dataDir and trains the source model,
// an arch, on sourcePer images per class, or finds it in work; it
// returns the splits and the model's path.
func Prepare(ctx context.Context, dataDir, work string, sourcePer int, arch string) (Sets, string, error) {
	sets, err := ReadSets(dataDir)
	if err != nil {
		return sets, "", err
	}
	weights, err := SourceModel(ctx, work, sets.Train, sourcePer, arch)
	return sets, weights, err
}
