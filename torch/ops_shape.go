package torch

// MemoryFormat is the physical layout of a 4-d tensor.
type MemoryFormat int8

// Memory formats, with libtorch's codes.
const (
	ContiguousFormat MemoryFormat = 0
	PreserveFormat   MemoryFormat = 1
	ChannelsLast     MemoryFormat = 2
)

var (
	opReshape      = newOp("aten::reshape", "")
	opView         = newOp("aten::view", "")
	opPermute      = newOp("aten::permute", "")
	opTranspose    = newOp("aten::transpose", "int")
	opContiguous   = newOp("aten::contiguous", "")
	opCat          = newOp("aten::cat", "")
	opStack        = newOp("aten::stack", "")
	opNarrow       = newOp("aten::narrow", "")
	opIndexSelect  = newOp("aten::index_select", "")
	opGather       = newOp("aten::gather", "")
	opSqueeze      = newOp("aten::squeeze", "")
	opSqueezeDim   = newOp("aten::squeeze", "dim")
	opUnsqueeze    = newOp("aten::unsqueeze", "")
	opFlatten      = newOp("aten::flatten", "using_ints")
	opFlip         = newOp("aten::flip", "")
	opSelect       = newOp("aten::select", "int")
	opExpand       = newOp("aten::expand", "")
	opChunk        = newOp("aten::chunk", "")
	opSplit        = newOp("aten::split", "Tensor")
	opClone        = newOp("aten::clone", "")
	opDetach       = newOp("aten::detach", "")
	opToDevice     = newOp("aten::to", "device")
	opToDType      = newOp("aten::to", "dtype")
	opIndexTensor  = newOp("aten::index", "Tensor")
	opIsContiguous = newOp("aten::is_contiguous", "memory_format")
)

// Reshape returns t with a new shape (a view when possible); one size may
// be -1.
func (t *Tensor) Reshape(shape ...int64) (*Tensor, error) {
	return opReshape.tensor(newArgs().T(t).Ints(shape))
}

// View returns a view of t with a new shape; t must be compatible.
func (t *Tensor) View(shape ...int64) (*Tensor, error) {
	return opView.tensor(newArgs().T(t).Ints(shape))
}

// Permute returns a view with dimensions reordered.
func (t *Tensor) Permute(dims ...int64) (*Tensor, error) {
	return opPermute.tensor(newArgs().T(t).Ints(dims))
}

// Transpose returns a view with dimensions d0 and d1 swapped.
func (t *Tensor) Transpose(d0, d1 int64) (*Tensor, error) {
	return opTranspose.tensor(newArgs().T(t).Int(d0).Int(d1))
}

// Contiguous returns t laid out contiguously in row-major order.
func (t *Tensor) Contiguous() (*Tensor, error) { return t.ContiguousAs(ContiguousFormat) }

// ContiguousAs returns t laid out contiguously in memory format f.
func (t *Tensor) ContiguousAs(f MemoryFormat) (*Tensor, error) {
	return opContiguous.tensor(newArgs().T(t).Int(int64(f)))
}

// Cat concatenates tensors along dim.
func Cat(ts []*Tensor, dim int64) (*Tensor, error) {
	return opCat.tensor(newArgs().Tensors(ts).Int(dim))
}

// Stack stacks tensors of one shape along a new dimension dim.
func Stack(ts []*Tensor, dim int64) (*Tensor, error) {
	return opStack.tensor(newArgs().Tensors(ts).Int(dim))
}

// Narrow returns the view of length elements of dim starting at start.
func (t *Tensor) Narrow(dim, start, length int64) (*Tensor, error) {
	return opNarrow.tensor(newArgs().T(t).Int(dim).Int(start).Int(length))
}

// IndexSelect returns the entries of dim listed in index (int64).
func (t *Tensor) IndexSelect(dim int64, index *Tensor) (*Tensor, error) {
	return opIndexSelect.tensor(newArgs().T(t).Int(dim).T(index))
}

// Gather collects values along dim at the positions in index.
func (t *Tensor) Gather(dim int64, index *Tensor) (*Tensor, error) {
	return opGather.tensor(newArgs().T(t).Int(dim).T(index))
}

// Index indexes t with one int64 or bool tensor per leading dimension, as
// t[i0, i1, ...]; nil entries take the whole dimension.
func (t *Tensor) Index(indices ...*Tensor) (*Tensor, error) {
	return opIndexTensor.tensor(newArgs().T(t).OptTensors(indices))
}

// Squeeze removes every dimension of size 1.
func (t *Tensor) Squeeze() (*Tensor, error) { return opSqueeze.tensor(newArgs().T(t)) }

// SqueezeDim removes dimension dim if its size is 1.
func (t *Tensor) SqueezeDim(dim int64) (*Tensor, error) {
	return opSqueezeDim.tensor(newArgs().T(t).Int(dim))
}

// Unsqueeze inserts a dimension of size 1 at dim.
func (t *Tensor) Unsqueeze(dim int64) (*Tensor, error) {
	return opUnsqueeze.tensor(newArgs().T(t).Int(dim))
}

// Flatten merges dimensions start..end (inclusive; negative counts from the
// end) into one.
func (t *Tensor) Flatten(start, end int64) (*Tensor, error) {
	return opFlatten.tensor(newArgs().T(t).Int(start).Int(end))
}

// Flip reverses the order of elements along dims.
func (t *Tensor) Flip(dims ...int64) (*Tensor, error) {
	return opFlip.tensor(newArgs().T(t).Ints(dims))
}

// Select returns the slice at index of dim, with dim removed.
func (t *Tensor) Select(dim, index int64) (*Tensor, error) {
	return opSelect.tensor(newArgs().T(t).Int(dim).Int(index))
}

// Expand returns a broadcast view of t with the given sizes (-1 keeps one).
func (t *Tensor) Expand(shape ...int64) (*Tensor, error) {
	return opExpand.tensor(newArgs().T(t).Ints(shape))
}

// Chunk splits t into n nearly equal views along dim.
func (t *Tensor) Chunk(n, dim int64) ([]*Tensor, error) {
	return opChunk.tensors(newArgs().T(t).Int(n).Int(dim))
}

// Split splits t into views of size elements along dim (the last may be
// smaller).
func (t *Tensor) Split(size, dim int64) ([]*Tensor, error) {
	return opSplit.tensors(newArgs().T(t).Int(size).Int(dim))
}

// Clone returns a copy of t that autograd tracks back to t.
func (t *Tensor) Clone() (*Tensor, error) { return opClone.tensor(newArgs().T(t)) }

// Detach returns t cut from the autograd graph; it shares t's storage.
func (t *Tensor) Detach() (*Tensor, error) { return opDetach.tensor(newArgs().T(t)) }

// To returns t on device d with dtype dt, copying only when needed.
func (t *Tensor) To(d Device, dt DType) (*Tensor, error) {
	return opToDevice.tensor(newArgs().T(t).Device(d).DType(dt))
}

// ToDevice returns t on device d with its own dtype.
func (t *Tensor) ToDevice(d Device) (*Tensor, error) { return t.To(d, t.DType()) }

// ToDType returns t converted to dtype dt.
func (t *Tensor) ToDType(dt DType) (*Tensor, error) {
	return opToDType.tensor(newArgs().T(t).DType(dt))
}
