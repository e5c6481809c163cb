package finetune

import (
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/finetune-go/finetune/vision/data"
)

// resizeSample is how many training images' sizes decide data.resize: 0.
const resizeSample = 64

// evalResize decides the shorter side images are resized to before the
// center crop at evaluation, and why (when data.resize is 0). torchvision
// resizes to 8/7 of the crop (256 for 224) because ImageNet's photographs
// are larger than the crop and their borders matter little; images
// already at or below the crop size would only lose content to that
// crop, so they are resized to the crop itself. The median shorter side
// of a seeded sample of the training images (their headers only) decides;
// between the two, the images keep their size and lose only what exceeds
// the crop.
func evalResize(cfg Config, set *data.Dataset, indices []int) (int, string) {
	if cfg.Data.Resize > 0 {
		return cfg.Data.Resize, ""
	}
	crop, ratio := cfg.Data.ImageSize, cfg.EvalResize()
	side, n := medianShorterSide(set, indices, cfg.Seed)
	switch {
	case n == 0:
		return ratio, fmt.Sprintf("8/7 of data.image_size %d, as torchvision: no training image's size could be read", crop)
	case side <= crop:
		return crop, fmt.Sprintf("the training images' median shorter side is %d pixels (%d training images read), at or below data.image_size %d: resized to the crop, nothing cropped away", side, n, crop)
	case side < ratio:
		return side, fmt.Sprintf("the training images' median shorter side is %d pixels (%d training images read), between data.image_size %d and its 8/7: kept, only what exceeds the crop is cropped", side, n, crop)
	}
	return ratio, fmt.Sprintf("8/7 of data.image_size %d, as torchvision's 256 for 224: the training images' median shorter side is %d pixels (%d training images read)", crop, side, n)
}

// medianShorterSide returns the median shorter side of up to
// resizeSample images of set at indices, chosen with seed, from their
// headers, and how many could be read.
func medianShorterSide(set *data.Dataset, indices []int, seed uint64) (int, int) {
	sample := append([]int(nil), indices...)
	rand.New(rand.NewPCG(seed, 0x7e51)).Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
	var sides []int
	for _, i := range sample[:min(len(sample), resizeSample)] {
		if side, ok := shorterSide(set.Samples[i].Path); ok {
			sides = append(sides, side)
		}
	}
	if len(sides) == 0 {
		return 0, 0
	}
	slices.Sort(sides)
	return sides[len(sides)/2], len(sides)
}

// shorterSide reads the shorter side of the image at path from its
// header; a file that cannot be read is left to the loader to report.
func shorterSide(path string) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	c, _, err := image.DecodeConfig(f)
	if err != nil || c.Width <= 0 || c.Height <= 0 {
		return 0, false
	}
	return min(c.Width, c.Height), true
}
