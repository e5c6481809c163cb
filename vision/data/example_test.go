package data_test

import (
	"context"
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
	evalPipe, err := data.EvalPipeline(32, 24, data.ImageNet)
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

func ExampleBatchLoader() {
	root := writeExampleFolder() // 6 cats, 2 dogs
	defer os.RemoveAll(root)
	ds, err := data.ImageFolder(root)
	if err != nil {
		log.Fatal(err)
	}
	pipe, err := data.TrainPipeline(data.AugmentConfig{Size: 24, HFlip: 0.5})
	if err != nil {
		log.Fatal(err)
	}
	// Batches of 3 from 8 samples: 3, 3 and 2, reshuffled every epoch.
	loader, err := data.NewBatchLoader(&data.Loader{Dataset: ds, Pipeline: pipe}, nil,
		data.BatchOptions{BatchSize: 3, Workers: 2, Shuffle: true, Seed: 42})
	if err != nil {
		log.Fatal(err)
	}
	defer loader.Close()

	for epoch := range 2 {
		for batch, err := range loader.Epoch(context.Background(), epoch) {
			if err != nil {
				log.Fatal(err)
			}
			labels, err := batch.Labels.Int64s()
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println("epoch", epoch, "images", batch.Images.Shape(), "labels", labels, "samples", batch.Indices)
			batch.Free() // the consumer owns each batch
		}
	}
	// Output:
	// epoch 0 images [3 3 24 24] labels [0 1 0] samples [3 6 5]
	// epoch 0 images [3 3 24 24] labels [0 0 0] samples [2 4 1]
	// epoch 0 images [2 3 24 24] labels [1 0] samples [7 0]
	// epoch 1 images [3 3 24 24] labels [1 1 0] samples [6 7 3]
	// epoch 1 images [3 3 24 24] labels [0 0 0] samples [1 0 5]
	// epoch 1 images [2 3 24 24] labels [0 0] samples [2 4]
}
