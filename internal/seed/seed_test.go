package seed

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMixIsFixed pins Mix's values: a change would give resumed runs and
// recorded searches other draws than they started with.
func TestMixIsFixed(t *testing.T) {
	for _, tc := range []struct {
		vals []uint64
		want uint64
	}{
		{nil, 0x9e3779b97f4a7c15},
		{[]uint64{0}, 0x630c2c57945e7022},
		{[]uint64{7, 0, 3}, 0x8464931d6aebacd6},
		{[]uint64{3, 0, 7}, 0xa626d4fd1712292b}, // order matters
	} {
		require.Equal(t, tc.want, Mix(tc.vals...), "Mix(%v)", tc.vals)
	}
}
