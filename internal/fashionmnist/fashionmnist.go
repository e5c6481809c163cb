// Package fashionmnist reads Fashion-MNIST as Debian's
// dataset-fashion-mnist package ships it (gzipped IDX files) and writes
// chosen classes as image folders, the layout finetune trains on.
package fashionmnist

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
)

// DefaultDir is where Debian's dataset-fashion-mnist puts the files.
const DefaultDir = "/usr/share/datasets/fashion-mnist"

// Classes are the ten labels, as folder names.
var Classes = []string{"tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"}

// Set is one split: 28×28 grayscale images and their labels.
type Set struct {
	Images [][]byte // 784 bytes each, row-major
	Labels []uint8
}

// Side is the images' width and height.
const Side = 28

// Read reads the "train" or "t10k" split from dir.
func Read(dir, split string) (*Set, error) {
	imgs, err := readIDX(filepath.Join(dir, split+"-images-idx3-ubyte.gz"), 0x803)
	if err != nil {
		return nil, err
	}
	labels, err := readIDX(filepath.Join(dir, split+"-labels-idx1-ubyte.gz"), 0x801)
	if err != nil {
		return nil, err
	}
	n := len(labels.data)
	if len(imgs.data) != n*Side*Side {
		return nil, fmt.Errorf("fashionmnist: %s: %d labels but %d image bytes", dir, n, len(imgs.data))
	}
	s := &Set{Images: make([][]byte, n), Labels: labels.data}
	for i := range s.Images {
		s.Images[i] = imgs.data[i*Side*Side : (i+1)*Side*Side]
	}
	return s, nil
}

type idx struct{ data []byte }

func readIDX(path string, magic uint32) (*idx, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fashionmnist: %w (install Debian's dataset-fashion-mnist)", err)
	}
	defer f.Close()
	z, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("fashionmnist: %s: %w", path, err)
	}
	var head uint32
	if err := binary.Read(z, binary.BigEndian, &head); err != nil || head != magic {
		return nil, fmt.Errorf("fashionmnist: %s: not an IDX file of the expected kind (magic %#x)", path, head)
	}
	dims := int(magic & 0xff)
	size := 1
	for range dims {
		var d uint32
		if err := binary.Read(z, binary.BigEndian, &d); err != nil {
			return nil, fmt.Errorf("fashionmnist: %s: %w", path, err)
		}
		size *= int(d)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(z, data); err != nil {
		return nil, fmt.Errorf("fashionmnist: %s: truncated: %w", path, err)
	}
	return &idx{data: data}, nil
}

// WriteFolder writes up to perClass images of each listed class (all when
// perClass <= 0), in the order they appear, as dst/<class>/<n>.png, and
// returns how many it wrote per class.
func (s *Set) WriteFolder(dst string, classes []int, perClass int) ([]int, error) {
	return s.WriteFolderMapped(dst, classes, perClass, nil)
}

// Invert maps a grey level to its negative: a light background, as
// photographs of garments on a table have, unlike the dataset's.
func Invert(v uint8) uint8 { return 255 - v }

// WriteFolderMapped is WriteFolder with every grey level passed through
// level (nil keeps them).
func (s *Set) WriteFolderMapped(dst string, classes []int, perClass int, level func(uint8) uint8) ([]int, error) {
	counts := make([]int, len(classes))
	pos := map[int]int{}
	for i, c := range classes {
		if c < 0 || c >= len(Classes) {
			return nil, fmt.Errorf("fashionmnist: no class %d", c)
		}
		pos[c] = i
		if err := os.MkdirAll(filepath.Join(dst, Classes[c]), 0o755); err != nil {
			return nil, err
		}
	}
	for i, l := range s.Labels {
		k, ok := pos[int(l)]
		if !ok || perClass > 0 && counts[k] >= perClass {
			continue
		}
		pix := s.Images[i]
		if level != nil {
			pix = make([]byte, len(s.Images[i]))
			for k, v := range s.Images[i] {
				pix[k] = level(v)
			}
		}
		img := &image.Gray{Pix: pix, Stride: Side, Rect: image.Rect(0, 0, Side, Side)}
		path := filepath.Join(dst, Classes[l], fmt.Sprintf("%05d.png", i))
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		if err := png.Encode(f, img); err != nil {
			f.Close()
			return nil, fmt.Errorf("fashionmnist: %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		counts[k]++
	}
	return counts, nil
}
