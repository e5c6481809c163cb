// Package nn builds networks as trees of modules, after PyTorch's
// nn.Module.
//
// Every module embeds ModuleBase, which keeps its parameters, buffers and
// children in registration order; a module's path in the tree joined with
// dots is PyTorch's state-dict key ("layer1.0.bn1.running_mean"), and
// StateDict, NamedParameters and Walk return entries in PyTorch's order,
// never a map's.
//
// Two switches are kept apart on purpose, because fine-tuning lives in the
// gap between them:
//
//   - a module's mode (Train, TrainWhere, ModuleBase.SetTraining) says how
//     it computes: BatchNorm normalises with batch statistics and updates
//     its running ones in training mode, with the stored ones in eval mode;
//     Dropout is active only in training mode;
//   - a parameter's requires_grad (Freeze, Unfreeze, SetRequiresGrad) says
//     whether it learns.
//
// Neither ever changes the other: every BatchNorm can be in eval mode under
// a training parent, and a frozen backbone keeps whatever mode it was given.
//
// Constructors initialise parameters exactly as PyTorch's do, drawing from
// libtorch's default generator in the same order, so torch.ManualSeed(s)
// gives the initial weights torch.manual_seed(s) gives in Python.
// Parameters and buffers live as long as the module (see Free).
package nn
