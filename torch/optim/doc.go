// Package optim updates parameters from their gradients with the update
// rules of torch.optim: SGD (with momentum, dampening, Nesterov momentum and
// weight decay), Adam and AdamW (each with the AMSGrad variant).
//
// # Fidelity
//
// Each optimizer replays PyTorch 1.13's single-tensor code path
// (torch/optim/sgd.py, adam.py, adamw.py with foreach=False, the default)
// operation by operation: the same ATen operators with the same scalars in
// the same order, the step count kept in float32 as PyTorch's state["step"]
// is, and the bias corrections computed with the C library's pow, as
// Python's float power is. On the same libtorch the parameters come out
// bit for bit equal to PyTorch's.
//
// # Parameter groups
//
// Parameters are updated in groups that carry their own hyper-parameters,
// as PyTorch's param_groups do. A ParamGroup holds every hyper-parameter
// of the three optimizers; each optimizer reads only its own. SGD's zero
// values are PyTorch's defaults (except the learning rate, which PyTorch
// requires too); AdamGroup and AdamWGroup return groups with Adam's and
// AdamW's defaults. A scheduler changes a learning rate between steps by
// assigning to Groups()[i].LR; Step validates the groups before it updates
// anything.
//
// # Memory
//
// Step runs under torch.NoGrad and gives each parameter's update its own
// torch scope, so temporaries are freed as soon as that parameter is done.
// The optimizer's state (momentum buffers, moment estimates) is kept out of
// every scope and lives as long as the optimizer; LoadState frees the state
// it replaces.
//
// # Checkpoints
//
// State returns the optimizer's state as named tensors plus JSON-encodable
// hyper-parameters, in the layout of PyTorch's optimizer.state_dict():
// tensors are named "state.<i>.<buffer>", where i numbers the parameters
// across groups in order, and each group lists the numbers of its
// parameters. LoadState restores it into an optimizer of the same kind over
// parameters grouped the same way.
package optim
