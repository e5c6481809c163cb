package main

import (
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/image/draw"

	"github.com/finetune-go/finetune/internal/fashionmnist"
)

// The seed scenario's images: two Fashion-MNIST classes that look alike
// (T-shirt/top and shirt), upscaled to seedSide pixels and colourised,
// so that they are unlike ImageNet's photographs, as JPEGs of quality 90.
const (
	seedSide    = 300
	seedQuality = 90
)

var seedClasses = []int{0, 6} // tshirt, shirt

// seedData writes the first perClass images of each seed class under dir
// once, 80 % of each class to train/ and the rest to val/, and returns
// the two folders. Both tools train and validate on them.
func seedData(mnistDir, dir string, perClass int) (train, val string, err error) {
	root := filepath.Join(dir, fmt.Sprintf("images-%d", perClass))
	nTrain := perClass * 4 / 5
	err = seedImages(mnistDir, "train", root, perClass, func(k int) string {
		if k < nTrain {
			return "train"
		}
		return "val"
	})
	return filepath.Join(root, "train"), filepath.Join(root, "val"), err
}

// seedTest writes the first perClass images of each seed class of
// Fashion-MNIST's test split under dir once, and returns the folder: the
// test set neither tool sees before its final evaluation.
func seedTest(mnistDir, dir string, perClass int) (string, error) {
	root := filepath.Join(dir, fmt.Sprintf("test-%d", perClass))
	return root, seedImages(mnistDir, "t10k", root, perClass, func(int) string { return "." })
}

// seedImages writes the first perClass images of each seed class of
// Fashion-MNIST's split to root/folder(k)/<class>/, where k counts the
// class's images from 0, unless root exists. The images are written
// under a temporary name and renamed when complete, so an interrupted
// run leaves nothing that a later one would take for the data.
func seedImages(mnistDir, split, root string, perClass int, folder func(k int) string) error {
	if _, err := os.Stat(root); err == nil {
		return nil
	}
	set, err := fashionmnist.Read(mnistDir, split)
	if err != nil {
		return err
	}
	have := map[int]int{}
	for _, l := range set.Labels {
		have[int(l)]++
	}
	for _, c := range seedClasses {
		if have[c] < perClass {
			return fmt.Errorf("seed data: Fashion-MNIST's %s split has %d images of %s, want %d", split, have[c], fashionmnist.Classes[c], perClass)
		}
	}
	tmp := root + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	for _, c := range seedClasses {
		k := 0
		for i, l := range set.Labels {
			if int(l) != c || k >= perClass {
				continue
			}
			path := filepath.Join(tmp, folder(k), fashionmnist.Classes[c], fmt.Sprintf("%05d.jpg", i))
			if err := writeJPEG(path, seedImage(set.Images[i], i)); err != nil {
				return err
			}
			k++
		}
	}
	return os.Rename(tmp, root)
}

// seedImage makes image i from its 28×28 grey levels: upscaled with
// Catmull-Rom, the garment and the background each given a colour of
// their own, with some per-pixel noise that gives the JPEG a photograph's
// texture to encode and decode. The colours and noise depend only on i.
func seedImage(grey []byte, i int) *image.RGBA {
	src := &image.Gray{Pix: grey, Stride: fashionmnist.Side, Rect: image.Rect(0, 0, fashionmnist.Side, fashionmnist.Side)}
	big := image.NewGray(image.Rect(0, 0, seedSide, seedSide))
	draw.CatmullRom.Scale(big, big.Bounds(), src, src.Bounds(), draw.Src, nil)
	rng := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	var fg, bg [3]float64
	for c := range 3 {
		fg[c] = 40 + 215*rng.Float64()
		bg[c] = 255 * rng.Float64()
	}
	out := image.NewRGBA(big.Bounds())
	for p, g := range big.Pix {
		t := float64(g) / 255
		for c := range 3 {
			v := bg[c] + (fg[c]-bg[c])*t + 8*rng.NormFloat64()
			out.Pix[4*p+c] = uint8(math.Round(min(max(v, 0), 255)))
		}
		out.Pix[4*p+3] = 255
	}
	return out
}

func writeJPEG(path string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: seedQuality}); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// seedWeights saves a randomly initialised torchvision arch as
// dir/<arch>-random.pth once, with the PyTorch side's "weights" command,
// and returns its path.
func seedWeights(o options, dir, arch string) (string, error) {
	path := filepath.Join(dir, arch+"-random.pth")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	cmd := exec.Command(o.python, o.seedScript, "weights", tmp, "--arch", arch)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s weights: %w", o.seedScript, err)
	}
	return path, os.Rename(tmp, path)
}
