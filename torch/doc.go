// Package torch binds libtorch, PyTorch's C++ core, for Go: tensors on the
// CPU or CUDA, the ATen operators, autograd and random generators.
//
// # Calling libtorch
//
// A small hand-written C++ shim (shim.cpp) reaches every ATen operator by
// name through libtorch's dispatcher, so an operation runs exactly the
// kernel, autograd formula and device dispatch that PyTorch runs. Every C++
// exception is caught in the shim and comes back as an *Error holding
// libtorch's message; a bad call never crashes the process. Functions and
// methods return errors; Must turns an error into a panic where that is
// the caller's documented choice (tests, examples).
//
// # Memory
//
// Native memory is released deterministically through scopes. A Scope owns
// every tensor created on its goroutine while it is the innermost open
// scope, and Close frees them all:
//
//	for step := range steps {
//		s := torch.NewScope()
//		loss, _ := model.Loss(x, y) // intermediates join s
//		loss.Backward()
//		opt.Step()
//		s.Close() // frees them, however many there were
//	}
//
// Parameters and anything else meant to outlive the step are made outside
// a scope, or taken out with Keep (no scope) or MoveTo (an enclosing one).
// A tensor made outside any scope is freed by Free, or by the garbage
// collector as a safety net; nothing ever waits for the collector. Using a
// tensor after its scope closed returns ErrFreed instead of touching freed
// memory.
//
// # Threads
//
// libtorch keeps per-thread state: grad mode, autocast, and allocator
// caches. NewScope and NoGrad pin the calling goroutine to its OS thread
// while they are open, so that state stays with the goroutine and a scope
// is found through the thread it was opened on; tensors made by other
// goroutines, such as a data loader's workers, never join it. Training code
// should run on one goroutine. SetNumThreads sets libtorch's intra-op
// parallelism for the whole process.
//
// # Building
//
// By default the package builds against Debian's libtorch-dev. To use
// another libtorch (an official CUDA build unpacked in third_party/libtorch
// or a path in $LIBTORCH), source scripts/libtorch-env.sh: it sets the
// libtorch_env build tag and the cgo flags, including the
// -Wl,--no-as-needed that keeps libtorch_cuda linked.
//
// Every program that imports the package links tcmalloc
// (libtcmalloc-minimal4) ahead of libc, so that its malloc serves libtorch
// too: a training step's activations, freed, serve the next step, where
// glibc's malloc would map them afresh and the system zero them again.
// Allocator reports the malloc in use.
package torch
