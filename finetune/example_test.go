package finetune_test

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"log"
	"os"
	"path/filepath"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
)

// tinyConfig is a run small enough for an example: 16 images of 32×32
// pixels (testdata/shapes: discs and bars), a ResNet18 from random
// weights, one epoch.
func tinyConfig() finetune.Config {
	cfg := finetune.Defaults()
	cfg.Data.Train = "testdata/shapes"
	cfg.Data.ImageSize, cfg.Data.BatchSize, cfg.Data.ValSplit = 32, 4, 0.25
	cfg.Model.Arch, cfg.Model.Weights = "resnet18", "none"
	cfg.Model.Head.Init, cfg.Probe, cfg.ProbeFallback, cfg.Search = "random", false, false, "off"
	cfg.Stages = []finetune.Stage{{Name: "all", Epochs: 1, Freeze: "none", BackboneLRMult: 1}}
	return cfg
}

// Train a model and keep the run's record in a folder of its own.
func ExampleTrain() {
	runs, err := os.MkdirTemp("", "runs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(runs)

	folder, err := runfolder.New(runs, runfolder.Options{})
	if err != nil {
		log.Fatal(err)
	}
	res, err := finetune.Train(context.Background(), tinyConfig(), finetune.Options{Recorder: folder})
	if err = errors.Join(err, folder.Close()); err != nil {
		log.Fatal(err)
	}
	defer res.Model.Close() // the caller owns the trained model

	fmt.Println("classes:", res.Classes)
	fmt.Println("epochs:", len(res.History))
	fmt.Println("BatchNorm:", res.Plan.BatchNorm) // auto without pretrained statistics: train
	for _, f := range folder.Files() {
		if f.Path == filepath.Join(folder.Dir(), "best.safetensors") {
			fmt.Println("best.safetensors written")
		}
	}
	// Output:
	// classes: [bar disc]
	// epochs: 1
	// BatchNorm: train
	// best.safetensors written
}

// Classify an image in memory with a model just trained; a checkpoint's
// model (LoadCheckpoint) and its Meta work the same way.
func ExamplePredictImage() {
	res, err := finetune.Train(context.Background(), tinyConfig(), finetune.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer res.Model.Close()

	img := image.NewGray(image.Rect(0, 0, 40, 40))
	for y := 18; y < 22; y++ {
		for x := 5; x < 35; x++ {
			img.SetGray(x, y, color.Gray{Y: 220})
		}
	}
	p, err := finetune.PredictImage(res.Model, res.Meta, img, false)
	if err != nil {
		log.Fatal(err)
	}
	sum := 0.0
	for _, q := range p.Probabilities {
		sum += q
	}
	fmt.Printf("%d probabilities summing to %.2f, for %v\n", len(p.Probabilities), sum, res.Meta.Classes)
	// Output:
	// 2 probabilities summing to 1.00, for [bar disc]
}
