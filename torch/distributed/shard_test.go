package distributed

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestShard(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 100} {
		for _, world := range []int{1, 2, 3, 4, 8} {
			order := rand.New(rand.NewPCG(1, uint64(n))).Perm(n)
			again := rand.New(rand.NewPCG(1, uint64(n))).Perm(n)
			per := (n + world - 1) / world
			seen := map[int]int{}
			for rank := range world {
				part := Shard(order, rank, world)
				if len(part) != per {
					t.Fatalf("n=%d world=%d: rank %d has %d samples, want %d", n, world, rank, len(part), per)
				}
				if !slices.Equal(part, Shard(again, rank, world)) {
					t.Fatalf("n=%d world=%d: the same seed gave rank %d another part", n, world, rank)
				}
				for i, s := range part {
					if want := order[(rank+i*world)%n]; s != want {
						t.Fatalf("n=%d world=%d: rank %d's sample %d is %d, want %d", n, world, rank, i, s, want)
					}
					seen[s]++
				}
			}
			// Every sample is taken, and only the padding twice.
			if len(seen) != n {
				t.Fatalf("n=%d world=%d: %d distinct samples taken", n, world, len(seen))
			}
			extra := 0
			for _, c := range seen {
				extra += c - 1
			}
			if extra != per*world-n {
				t.Fatalf("n=%d world=%d: %d repeated samples, want %d", n, world, extra, per*world-n)
			}
		}
	}
}
