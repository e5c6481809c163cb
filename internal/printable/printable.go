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

// Text returns s with every control character other than newline and tab
// escaped as strconv.Quote would, for messages of several lines (an
// error, a table) that quote names from files.
func Text(s string) string {
	if strings.IndexFunc(s, unsafe) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafe(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafe(r rune) bool {
	return r != '\n' && r != '\t' && (unicode.IsControl(r) || r == unicode.ReplacementChar)
}

// Error returns err with the control characters of its message escaped
// as Text does, so that a name from a file it quotes (a class folder, an
// image, a state-dict key) cannot rewrite the terminal that prints it.
// errors.Is and errors.As see through it; an error with a safe message
// (and nil) is returned as it is.
func Error(err error) error {
	if err == nil || strings.IndexFunc(err.Error(), unsafe) < 0 {
		return err
	}
	return escaped{err}
}

// Escape replaces *err with Error(*err), for a function's deferred call
// on its named error result: defer printable.Escape(&err).
func Escape(err *error) { *err = Error(*err) }

type escaped struct{ err error }

func (e escaped) Error() string { return Text(e.err.Error()) }
func (e escaped) Unwrap() error { return e.err }
