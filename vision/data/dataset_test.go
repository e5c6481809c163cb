package data

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeTree creates files under root; a name ending in '/' is a folder,
// image names get a small valid PNG, others an empty file.
func writeTree(t *testing.T, root string, names ...string) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, image.NewNRGBA(image.Rect(0, 0, 4, 3))))
	for _, n := range names {
		p := filepath.Join(root, filepath.FromSlash(n))
		if strings.HasSuffix(n, "/") {
			require.NoError(t, os.MkdirAll(p, 0o755))
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		var content []byte
		if slicesContains(DefaultExtensions, strings.ToLower(filepath.Ext(n))) {
			content = buf.Bytes()
		}
		require.NoError(t, os.WriteFile(p, content, 0o644))
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestImageFolder(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root,
		"dog/b.JPG", "dog/a.png", "dog/c.webp", "dog/notes.txt", "dog/.DS_Store",
		"dog/sub/a.gif", "dog/sub-x/z.bmp", "dog/.hidden/x.png",
		"cat/1.jpeg", "cat/2.PNG",
		"bird/x.Jpeg",
		".ipynb_checkpoints/", "README.md",
	)
	// A class reached through a symbolic link, and a link loop inside it.
	other := t.TempDir()
	writeTree(t, other, "eel/e.png")
	require.NoError(t, os.Symlink(filepath.Join(other, "eel"), filepath.Join(root, "eel")))
	require.NoError(t, os.Symlink(filepath.Join(other, "eel"), filepath.Join(other, "eel", "loop")))

	ds, err := ImageFolder(root)
	require.NoError(t, err)
	require.Equal(t, root, ds.Root)
	require.Equal(t, []string{"bird", "cat", "dog", "eel"}, ds.Classes)
	j := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	require.Equal(t, []Sample{
		{j("bird/x.Jpeg"), 0},
		{j("cat/1.jpeg"), 1},
		{j("cat/2.PNG"), 1},
		// torchvision's order: folder by folder in sorted path order
		// ("dog" < "dog/sub" < "dog/sub-x"), then by name.
		{j("dog/a.png"), 2},
		{j("dog/b.JPG"), 2},
		{j("dog/c.webp"), 2},
		{j("dog/sub/a.gif"), 2},
		{j("dog/sub-x/z.bmp"), 2},
		{j("eel/e.png"), 3},
	}, ds.Samples)
	// .ipynb_checkpoints, README.md, dog/notes.txt, dog/.DS_Store, dog/.hidden.
	require.Equal(t, 5, ds.Ignored)
	require.Equal(t, []int{1, 2, 5, 1}, ds.ClassCounts())
	require.Equal(t, []int{0, 1, 1, 2, 2, 2, 2, 2, 3}, ds.Labels())

	only, err := ImageFolder(root, WithExtensions("PNG", ".jpeg"))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 1, 1}, only.ClassCounts())
	require.Equal(t, 9, only.Ignored) // and dog's jpg, webp, gif and bmp
}

func TestImageFolderErrors(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, files ...string) string {
		root := filepath.Join(base, name)
		require.NoError(t, os.MkdirAll(root, 0o755))
		writeTree(t, root, files...)
		return root
	}
	file := filepath.Join(base, "file.txt")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	tests := []struct {
		name    string
		root    string
		wantErr []string
	}{
		{"missing", filepath.Join(base, "nope"), []string{filepath.Join(base, "nope"), "no such file"}},
		{"not a directory", file, []string{file, "not a directory"}},
		{"no class folders", mk("flat", "a.png", "b.png"), []string{filepath.Join(base, "flat"), "no class folders"}},
		{"single class", mk("one", "cat/a.png"), []string{filepath.Join(base, "one"), `"cat"`, "at least 2 classes"}},
		{"empty class", mk("empty", "cat/a.png", "dog/"), []string{filepath.Join(base, "empty", "dog"), "no images"}},
		{"class of non-images", mk("junk", "cat/a.png", "dog/x.txt", "dog/.a.png"),
			[]string{filepath.Join(base, "junk", "dog"), "no images (2 other entries ignored)"}},
		{"only hidden classes", mk("hidden", ".a/x.png", ".b/y.png"), []string{"no class folders"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := ImageFolder(tt.root)
			require.Error(t, err)
			require.Nil(t, ds)
			for _, w := range tt.wantErr {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestDatasetStatistics(t *testing.T) {
	ds := &Dataset{Root: "/data/train", Classes: []string{"cat", "dog", "eel"}}
	for label, n := range []int{10, 40, 50} {
		for range n {
			ds.Samples = append(ds.Samples, Sample{Label: label})
		}
	}
	require.Equal(t, []int{10, 40, 50}, ds.ClassCounts())
	require.Equal(t, 5.0, ds.Imbalance())
	// scikit-learn: compute_class_weight("balanced", classes=[0,1,2], y=y)
	// = 100 / (3 * [10, 40, 50]).
	w := ds.ClassWeights()
	for i, want := range []float64{100.0 / 30, 100.0 / 120, 100.0 / 150} {
		require.InDelta(t, want, w[i], 1e-12)
	}
	require.Equal(t, `/data/train: 3 classes, 100 images, 0 ignored entries
  class  images  share  weight
  cat        10  10.0%   3.333
  dog        40  40.0%   0.833
  eel        50  50.0%   0.667
imbalance (largest/smallest class): 5.00`, ds.Summary())

	sub, err := ds.Subset([]int{0, 10, 11})
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 0}, sub.ClassCounts())
	require.True(t, math.IsInf(sub.Imbalance(), 1))
	require.Equal(t, 0.0, sub.ClassWeights()[2])
	_, err = ds.Subset([]int{100})
	require.ErrorContains(t, err, "index 100 out of range")
}

func TestMatchClasses(t *testing.T) {
	train := &Dataset{Root: "train", Classes: []string{"cat", "dog"}}
	val := &Dataset{Root: "val", Classes: []string{"cat", "dog"}}
	test := &Dataset{Root: "test", Classes: []string{"cat", "eel"}}
	require.NoError(t, MatchClasses(train, val))
	err := MatchClasses(train, val, test)
	require.ErrorContains(t, err, "classes of test differ from those of train")
	require.ErrorContains(t, err, `missing ["dog"], extra ["eel"]`)
}
