package torch

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAllocatorIsTcmalloc(t *testing.T) {
	a := Allocator()
	t.Logf("%v (%s)", a, a.Library)
	require.Equal(t, "tcmalloc", a.Name, "malloc resolves to %s: the torch package links tcmalloc ahead of libc", a.Library)
	require.Regexp(t, `^\d+\.\d+`, a.Version)
	require.Equal(t, a.Name+" "+a.Version, a.String())
}

// minorFaults counts the page faults of the process that needed no I/O:
// the first touch of a freshly mapped page is one.
func minorFaults(t *testing.T) int64 {
	t.Helper()
	var u syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &u))
	return u.Minflt
}

// TestAllocatorKeepsFreedMemory checks what the allocator is linked for: a
// block as large as a ResNet activation, freed by libtorch, serves the next
// step's allocation without the system mapping and zeroing it again. With
// glibc's malloc every round faults in all 16384 pages of the 64 MB block
// (above the 32 MB its mmap threshold can reach, a block is always mapped
// afresh).
func TestAllocatorKeepsFreedMemory(t *testing.T) {
	const numel = 16 << 20 // float32: 64 MB, 16384 pages
	round := func() {
		x := Must(Zeros([]int64{numel}))
		x.Free()
	}
	round()
	before := minorFaults(t)
	const rounds = 4
	for range rounds {
		round()
	}
	faults := minorFaults(t) - before
	t.Logf("%d minor faults in %d rounds of a 64 MB tensor", faults, rounds)
	require.Less(t, faults, int64(rounds*16384/10), "libtorch's freed 64 MB block was given back to the system and faulted in again")
}
