package torch

// #include "shim.h"
import "C"

import "runtime"

// Generator is a CPU random number generator with its own state, so one
// seed reproduces a draw independently of other users of randomness.
type Generator struct {
	h       C.ft_generator
	cleanup runtime.Cleanup
}

// ManualSeed seeds libtorch's default CPU generator, as torch.manual_seed.
func ManualSeed(seed uint64) { C.ft_manual_seed(C.uint64_t(seed)) }

// NewGenerator returns a CPU generator seeded with seed.
func NewGenerator(seed uint64) (*Generator, error) {
	g := &Generator{}
	if err := takeError(C.ft_generator_new(C.uint64_t(seed), &g.h)); err != nil {
		return nil, err
	}
	g.cleanup = runtime.AddCleanup(g, func(h C.ft_generator) { C.ft_generator_free(h) }, g.h)
	return g, nil
}

// Free releases the generator now; it is safe to call more than once.
func (g *Generator) Free() {
	if g == nil || g.h == nil {
		return
	}
	g.cleanup.Stop()
	C.ft_generator_free(g.h)
	g.h = nil
}

// Seed resets the generator to the start of seed's sequence.
func (g *Generator) Seed(seed uint64) error {
	if g.h == nil {
		return ErrFreed
	}
	err := takeError(C.ft_generator_set_seed(g.h, C.uint64_t(seed)))
	runtime.KeepAlive(g)
	return err
}

// State returns the generator's state as a uint8 tensor (for checkpoints).
func (g *Generator) State() (*Tensor, error) {
	if g.h == nil {
		return nil, ErrFreed
	}
	var out C.ft_tensor
	err := takeError(C.ft_generator_get_state(g.h, &out))
	runtime.KeepAlive(g)
	if err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

// SetState restores a state returned by State.
func (g *Generator) SetState(state *Tensor) error {
	if g.h == nil {
		return ErrFreed
	}
	h, err := state.handle()
	if err != nil {
		return err
	}
	err = takeError(C.ft_generator_set_state(g.h, h))
	runtime.KeepAlive(g)
	runtime.KeepAlive(state)
	return err
}
