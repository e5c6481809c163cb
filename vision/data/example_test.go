package data_test

import (
	"fmt"
	"image"
	"image/png"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/finetune-go/finetune/vision/data"
)

// writeExampleFolder writes a tiny dataset: 6 cats and 2 dogs.
func writeExampleFolder() string {
	root, err := os.MkdirTemp("", "pets")
	if err != nil {
		log.Fatal(err)
	}
	for class, n := range map[string]int{"cat": 6, "dog": 2} {
		if err := os.Mkdir(filepath.Join(root, class), 0o755); err != nil {
			log.Fatal(err)
		}
		for i := range n {
			f, err := os.Create(filepath.Join(root, class, fmt.Sprintf("%d.png", i)))
			if err != nil {
				log.Fatal(err)
			}
			if err := png.Encode(f, image.NewGray(image.Rect(0, 0, 40, 30))); err != nil {
				log.Fatal(err)
			}
			f.Close()
		}
	}
	return root
}

func Example() {
	root := writeExampleFolder()
	defer os.RemoveAll(root)

	ds, err := data.ImageFolder(root)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ds.Classes, ds.ClassCounts(), ds.ClassWeights())

	train, val, err := data.StratifiedSplit(ds.Labels(), 0.25, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(train), "train,", len(val), "validation")

	trainPipe, err := data.TrainPipeline(data.AugmentConfig{Size: 24, HFlip: 0.5})
	if err != nil {
		log.Fatal(err)
	}
	evalPipe, err := data.EvalPipeline(32, 24)
	if err != nil {
		log.Fatal(err)
	}
	trainLoader := &data.Loader{Dataset: ds, Pipeline: trainPipe}
	valLoader := &data.Loader{Dataset: ds, Pipeline: evalPipe}

	r := rand.New(rand.NewPCG(1, 2)) // one generator per worker goroutine
	img, label, err := trainLoader.Load(train[0], r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("train sample:", len(img.Data), "floats,", img.Height, "x", img.Width, "label", label)
	img, label, err = valLoader.Load(val[0], nil) // evaluation draws nothing
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("val sample: label %d, first value %.4f (black, ImageNet-normalised)\n", label, img.Data[0])
	// Output:
	// [cat dog] [6 2] [0.6666666666666666 2]
	// 5 train, 3 validation
	// train sample: 1728 floats, 24 x 24 label 0
	// val sample: label 0, first value -2.1179 (black, ImageNet-normalised)
}
