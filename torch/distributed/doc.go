// Package distributed runs data-parallel training over several processes
// with PyTorch's c10d: the TCPStore rendezvous, and the Gloo (CPU, or
// CUDA through the host) or NCCL (CUDA) collectives.
//
// Each process joins with Init, usually with the Config that FromEnv
// reads from the variables torchrun, Launch or Slurm's srun set:
//
//	c, err := distributed.FromEnv()
//	...
//	pg, err := distributed.Init(ctx, c)
//	...
//	defer pg.Close()
//	err = pg.BroadcastModule(model, 0) // every rank starts from rank 0's weights
//	for each step {
//		... forward and backward on this rank's part of the batch ...
//		err = reducer.Reduce(params)      // gradients averaged over the ranks
//		err = opt.Step()
//	}
//
// Shard picks a rank's samples of an epoch, as DistributedSampler does;
// GradReducer averages gradients in buckets; AllReduceValues sums
// metrics. Only rank 0 should write checkpoints and logs.
//
// # Failures
//
// Every collective is bounded by Config.Timeout. A rank that dies makes
// the others' collectives fail, with c10d's message (a closed
// connection, or a timeout), in an *Error; C++ exceptions never reach
// Go. Launch stops every rank when one fails.
//
// # Building
//
// The package compiles c10d.cpp against libtorch, as package torch
// compiles its shim, and needs Gloo's headers (Debian's libgloo-dev, the
// same Gloo that Debian's libtorch links). The NCCL backend is compiled
// in when CGO_CXXFLAGS defines USE_C10D_NCCL and reaches nccl.h and the
// CUDA headers, with a CUDA libtorch (scripts/libtorch-env.sh); without
// it, Backend "" chooses Gloo, which also reduces CUDA tensors. Under the
// shim_shared build tag, c10d is not available and Init fails.
package distributed
