package printable

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"layer1.0.conv1.weight", "layer1.0.conv1.weight"},
		{"chat noir", "chat noir"},
		{"café", "café"},
		{"evil\x1b[2J", `"evil\x1b[2J"`},
		{"a\nb", `"a\nb"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
		{"bell\a", `"bell\a"`},
	} {
		require.Equal(t, c.want, Name(c.in), "%q", c.in)
	}
	require.Equal(t, []string{"ok", `"\r"`}, Names([]string{"ok", "\r"}))
}

func TestText(t *testing.T) {
	require.Equal(t, "line 1\n\tline 2", Text("line 1\n\tline 2"))
	require.Equal(t, `cat\x1b[31m: no images`+"\n", Text("cat\x1b[31m: no images\n"))
	require.Equal(t, `a\rb\x00`, Text("a\rb\x00"))
}

func TestError(t *testing.T) {
	require.NoError(t, Error(nil))
	safe := errors.New("no images in cats")
	require.Same(t, safe, Error(safe))
	base := errors.New("base")
	err := fmt.Errorf("class folder evil\x1b[2J: %w", base)
	got := Error(err)
	require.Equal(t, `class folder evil\x1b[2J: base`, got.Error())
	require.ErrorIs(t, got, base)
	var escaped error = err
	Escape(&escaped)
	require.Equal(t, got.Error(), escaped.Error())
}
