package plural

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "0 epochs"}, {1, "1 epoch"}, {-1, "-1 epoch"}, {2, "2 epochs"}, {11, "11 epochs"}} {
		require.Equal(t, tc.want, Count(tc.n, "epoch"))
	}
}
