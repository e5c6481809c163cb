// Package snapshot records the files under a folder, for tests that check
// what a command left on disk, or that it left everything as it was. It
// is never used outside tests.
package snapshot

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Take maps every file under dir, by path relative to it, to its content;
// a symbolic link maps to "-> " and its target.
func Take(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		var b []byte
		if d.Type()&fs.ModeSymlink != 0 {
			var target string
			target, err = os.Readlink(path)
			b = []byte("-> " + target)
		} else {
			b, err = os.ReadFile(path)
		}
		out[rel] = string(b)
		return err
	}))
	return out
}
