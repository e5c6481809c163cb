// Package plural writes counts of things: "1 epoch", "3 epochs".
package plural

import "strconv"

// Count returns n and noun, with an s unless n is 1 or -1.
func Count(n int, noun string) string {
	if n == 1 || n == -1 {
		return strconv.Itoa(n) + " " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
