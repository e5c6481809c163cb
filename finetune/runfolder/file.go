package runfolder

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// tempPattern is the os.CreateTemp pattern of path's temporary files: a
// hidden name in path's folder that stale sees as one. It is the scheme of
// package tensorfile's checkpoint writes too.
func tempPattern(path string) string {
	return "." + filepath.Base(path) + ".tmp*"
}

// stale reports whether name is a temporary file of this scheme, which
// only a crash leaves behind.
func stale(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp")
}

// WriteFile writes a file atomically: write fills a temporary file in
// path's folder, which is synced to disk and renamed over path. If write
// or any step fails, path is left as it was (absent, or the old file,
// never a torn one) and the temporary file is removed.
func WriteFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), tempPattern(path))
	if err != nil {
		return err
	}
	tmp := f.Name()
	w := bufio.NewWriter(f)
	err = write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

// removeStale removes the temporary files a crash left in dir and in its
// fold folders, and returns their names.
func removeStale(dir string) ([]string, error) {
	var removed []string
	dirs := []string{dir}
	folds, err := filepath.Glob(filepath.Join(dir, "fold*"))
	if err != nil {
		return nil, err
	}
	dirs = append(dirs, folds...)
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			if d != dir {
				continue // fold1 may be a file of the user's
			}
			return removed, err
		}
		for _, e := range entries {
			if e.Type().IsRegular() && stale(e.Name()) {
				path := filepath.Join(d, e.Name())
				if err := os.Remove(path); err != nil {
					return removed, err
				}
				removed = append(removed, path)
			}
		}
	}
	return removed, nil
}
