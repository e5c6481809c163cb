package data

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/finetune-go/finetune/internal/printable"
)

// A Sample is one image file of a dataset and the index of its class.
type Sample struct {
	Path  string
	Label int
}

// A Dataset is a list of labelled image files, as torchvision's
// ImageFolder builds it.
type Dataset struct {
	Root    string   // the folder it was read from
	Classes []string // class names; a label indexes this slice
	Samples []Sample // sorted by class, then by path
	Ignored int      // hidden entries and files without an image extension
}

// DefaultExtensions are the file extensions ImageFolder accepts unless
// WithExtensions says otherwise; they are matched case-insensitively.
var DefaultExtensions = []string{".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp"}

// An Option configures ImageFolder.
type Option func(*folderConfig)

type folderConfig struct {
	exts []string
}

// WithExtensions replaces DefaultExtensions; each extension may be given
// with or without its leading dot, in any case.
func WithExtensions(exts ...string) Option {
	return func(c *folderConfig) {
		c.exts = c.exts[:0]
		for _, e := range exts {
			c.exts = append(c.exts, "."+strings.TrimPrefix(strings.ToLower(e), "."))
		}
	}
}

// ImageFolder reads a dataset laid out as root/<class>/<image>, the layout
// of torchvision's datasets.ImageFolder, with the same order: classes are
// the sub-folders of root sorted by name, and a class's images are found
// recursively, folder by folder in sorted path order, sorted by name
// within a folder. Symbolic links are followed. Unlike torchvision, entries
// whose name begins with '.' (.DS_Store, .ipynb_checkpoints) are skipped;
// they and files without an image extension are counted in Ignored.
//
// It fails, naming the path, when root is missing or not a folder, when it
// has no class folders or only one (classification needs two), and when a
// class folder holds no image.
func ImageFolder(root string, opts ...Option) (_ *Dataset, err error) {
	// Class folders are names from files: escaped, they cannot rewrite
	// the terminal that prints the error.
	defer printable.Escape(&err)
	cfg := folderConfig{exts: slices.Clone(DefaultExtensions)}
	for _, o := range opts {
		o(&cfg)
	}
	info, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("data: image folder: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("data: image folder %s: not a directory", root)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("data: image folder: %w", err)
	}
	ds := &Dataset{Root: root}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !isDir(root, e) {
			ds.Ignored++
			continue
		}
		ds.Classes = append(ds.Classes, e.Name())
	}
	switch len(ds.Classes) {
	case 0:
		return nil, fmt.Errorf("data: image folder %s: no class folders", root)
	case 1:
		return nil, fmt.Errorf("data: image folder %s: only one class folder %q: classification needs at least 2 classes",
			root, ds.Classes[0])
	}
	for label, class := range ds.Classes {
		dir := filepath.Join(root, class)
		w := walker{exts: cfg.exts, seen: map[string]bool{}}
		if err := w.walk(dir); err != nil {
			return nil, err
		}
		if len(w.files) == 0 {
			return nil, fmt.Errorf("data: image folder: class folder %s has no images (%d other entries ignored)",
				dir, w.ignored)
		}
		slices.SortFunc(w.files, func(a, b string) int {
			if c := strings.Compare(filepath.Dir(a), filepath.Dir(b)); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		for _, f := range w.files {
			ds.Samples = append(ds.Samples, Sample{Path: f, Label: label})
		}
		ds.Ignored += w.ignored
	}
	return ds, nil
}

// isDir reports whether entry e of folder dir is a folder or a symbolic
// link to one.
func isDir(dir string, e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink == 0 {
		return e.IsDir()
	}
	info, err := os.Stat(filepath.Join(dir, e.Name()))
	return err == nil && info.IsDir()
}

// walker collects the image files under a class folder.
type walker struct {
	exts    []string
	seen    map[string]bool // resolved folders, against symbolic link loops
	files   []string
	ignored int
}

func (w *walker) walk(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("data: image folder: %w", err)
	}
	if w.seen[real] {
		return nil
	}
	w.seen[real] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("data: image folder: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, "."):
			w.ignored++
		case isDir(dir, e):
			if err := w.walk(path); err != nil {
				return err
			}
		case slices.Contains(w.exts, strings.ToLower(filepath.Ext(name))):
			w.files = append(w.files, path)
		default:
			w.ignored++
		}
	}
	return nil
}
