package suggest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClosest(t *testing.T) {
	names := []string{"data.batch_size", "data.train", "train.lr"}
	cases := []struct {
		in, want string
	}{
		{"data.batch_sise", "data.batch_size"},
		{"data.trian", "data.train"},
		{"model.arch", ""},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Closest(c.in, names, 3), c.in)
	}
	require.Equal(t, 3, Distance("kitten", "sitting"))
	require.Equal(t, 0, Distance("", ""))
}
