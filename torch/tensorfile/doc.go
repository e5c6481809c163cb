// Package tensorfile reads and writes files of named tensors: PyTorch
// checkpoints made by torch.save and safetensors files.
//
// Tensors are returned as raw, contiguous, row-major, little-endian byte
// buffers; turning them into libtorch tensors is done elsewhere.
//
// # PyTorch checkpoints
//
// ReadPTH reads a state dict saved by torch.save, in both the zip format
// (the default since PyTorch 1.6) and the legacy format written with
// _use_new_zipfile_serialization=False. A checkpoint whose top level is a
// dict holding the state dict under "state_dict" or "model" is accepted too;
// the rest of such a checkpoint is ignored.
//
// A pickle is a program, not data: unpickling it in Python can call any
// function, so a downloaded checkpoint can run arbitrary code. This package
// never calls anything, but it still accepts only what
// torch.load(weights_only=True) accepts for a state dict, so that a file it
// reads is one that PyTorch can load safely, and a file that is not a state
// dict is reported as such rather than half-understood:
//
//   - the pickle opcodes of protocol 2 that torch's restricted unpickler
//     implements, plus BINFLOAT; other opcodes (including those of
//     protocols 3 and later, which torch.save does not use) are refused;
//   - the globals collections.OrderedDict, torch._utils._rebuild_tensor,
//     torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
//     torch._utils._rebuild_parameter_with_state and the storage classes
//     torch.FloatStorage, DoubleStorage, HalfStorage, BFloat16Storage,
//     LongStorage, IntStorage, ShortStorage, CharStorage, ByteStorage and
//     BoolStorage. Any other global, such as posix.system, is refused with an
//     error that names it;
//   - persistent ids that name a storage.
//
// Every value of the state dict must be a tensor: a state dict holding
// anything else (an int, a string, a nested dict) is reported as an error
// naming the entry, rather than silently losing part of it. The _metadata
// attribute of a state dict is ignored.
//
// Tensors may be views into a storage shared with other tensors, with a
// storage offset and arbitrary strides. A tensor whose elements lie
// contiguously in its storage shares memory with it, and so possibly with
// other tensors of the same file; any other tensor is copied into a new
// contiguous buffer. Copies are limited to the total size of the storages
// plus 1 GiB, so that a small crafted file cannot demand unbounded memory
// through zero or overlapping strides.
//
// Checkpoints saved on big-endian machines, storage views of the legacy
// format (written only by PyTorch before 0.4) and compressed zip records
// (which torch.save never writes) are refused.
//
// # Safetensors
//
// ReadSafetensors and WriteSafetensors implement the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header padded with spaces to a multiple of 8 bytes,
// then the tensors' bytes, contiguous and in order. Reading validates the
// header strictly; writing replaces the destination atomically.
//
// # Errors
//
// Every error names the file and says what is wrong with it. Truncated,
// corrupt, empty and missing files produce errors, never panics.
package tensorfile
