// Package suggest finds the name a typo most likely meant, for the "did
// you mean" of error messages.
package suggest

// Closest returns the name in names nearest to s, or "" when none is
// within maxDist edits (exclusive).
func Closest(s string, names []string, maxDist int) string {
	best, dist := "", maxDist
	for _, n := range names {
		if d := Distance(s, n); d < dist {
			best, dist = n, d
		}
	}
	return best
}

// Distance is the Levenshtein distance between a and b.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
