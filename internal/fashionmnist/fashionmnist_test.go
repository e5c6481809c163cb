package fashionmnist

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadAndWrite(t *testing.T) {
	train, err := Read(DefaultDir, "train")
	require.NoError(t, err)
	require.Len(t, train.Labels, 60000)
	test, err := Read(DefaultDir, "t10k")
	require.NoError(t, err)
	require.Len(t, test.Images, 10000)
	dst := t.TempDir()
	counts, err := test.WriteFolder(dst, []int{0, 6}, 5)
	require.NoError(t, err)
	require.Equal(t, []int{5, 5}, counts)
	files, err := os.ReadDir(filepath.Join(dst, "shirt"))
	require.NoError(t, err)
	require.Len(t, files, 5)
	_, err = Read(t.TempDir(), "train")
	require.ErrorContains(t, err, "dataset-fashion-mnist")
}
