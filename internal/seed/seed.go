// Package seed derives the seeds of random generators from several
// values, so that each stage, epoch or fold of a seeded run draws a
// stream of its own.
package seed

// Mix hashes vals, in order, into one seed: each value is combined into
// the hash as boost's hash_combine does, then mixed with SplitMix64's
// xor-shift and multiply. The function is fixed: resumed runs and
// recorded results rely on it giving the same seeds.
func Mix(vals ...uint64) uint64 {
	h := uint64(0x9E3779B97F4A7C15)
	for _, v := range vals {
		h ^= v + 0x9E3779B97F4A7C15 + h<<6 + h>>2
		h ^= h >> 31
		h *= 0xBF58476D1CE4E5B9
	}
	return h
}
