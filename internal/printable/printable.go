// Package printable makes names that come from files (state-dict keys,
// class folders, image file names) safe to print on a terminal: a name
// could otherwise carry escape sequences that rewrite what the user sees.
package printable

import (
	"strconv"
	"strings"
	"unicode"
)

// Name returns s as it is when every rune is printable, else s quoted
// with strconv.Quote, whose escapes show the control characters instead
// of sending them to the terminal.
func Name(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == unicode.ReplacementChar }) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// Names applies Name to each of names, in a new slice.
func Names(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = Name(n)
	}
	return out
}
