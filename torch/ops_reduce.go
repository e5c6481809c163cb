package torch

var (
	opSum     = newOp("aten::sum", "")
	opSumDim  = newOp("aten::sum", "dim_IntList")
	opMean    = newOp("aten::mean", "")
	opMeanDim = newOp("aten::mean", "dim")
	opMax     = newOp("aten::max", "")
	opMaxDim  = newOp("aten::max", "dim")
	opMin     = newOp("aten::min", "")
	opMinDim  = newOp("aten::min", "dim")
	opArgmax  = newOp("aten::argmax", "")
	opStdDim  = newOp("aten::std", "dim")
	opVarDim  = newOp("aten::var", "dim")
	opAll     = newOp("aten::all", "")
)

// Sum returns the sum of all elements as a 0-d tensor.
func (t *Tensor) Sum() (*Tensor, error) { return opSum.tensor(newArgs().T(t)) }

// SumDims sums over dims.
func (t *Tensor) SumDims(dims []int64, keepDim bool) (*Tensor, error) {
	return opSumDim.tensor(newArgs().T(t).Ints(dims).Bool(keepDim))
}

// Mean returns the mean of all elements.
func (t *Tensor) Mean() (*Tensor, error) { return opMean.tensor(newArgs().T(t)) }

// MeanDims averages over dims.
func (t *Tensor) MeanDims(dims []int64, keepDim bool) (*Tensor, error) {
	return opMeanDim.tensor(newArgs().T(t).Ints(dims).Bool(keepDim))
}

// Max returns the largest element.
func (t *Tensor) Max() (*Tensor, error) { return opMax.tensor(newArgs().T(t)) }

// MaxDim returns the largest values along dim and their indices.
func (t *Tensor) MaxDim(dim int64, keepDim bool) (values, indices *Tensor, err error) {
	return pair(opMaxDim.tensors(newArgs().T(t).Int(dim).Bool(keepDim)))
}

// Min returns the smallest element.
func (t *Tensor) Min() (*Tensor, error) { return opMin.tensor(newArgs().T(t)) }

// MinDim returns the smallest values along dim and their indices.
func (t *Tensor) MinDim(dim int64, keepDim bool) (values, indices *Tensor, err error) {
	return pair(opMinDim.tensors(newArgs().T(t).Int(dim).Bool(keepDim)))
}

// Argmax returns the indices of the largest values along dim.
func (t *Tensor) Argmax(dim int64, keepDim bool) (*Tensor, error) {
	return opArgmax.tensor(newArgs().T(t).Int(dim).Bool(keepDim))
}

// Std returns the standard deviation over dims (unbiased: Bessel's
// correction).
func (t *Tensor) Std(dims []int64, unbiased, keepDim bool) (*Tensor, error) {
	return opStdDim.tensor(newArgs().T(t).Ints(dims).Bool(unbiased).Bool(keepDim))
}

// Var returns the variance over dims.
func (t *Tensor) Var(dims []int64, unbiased, keepDim bool) (*Tensor, error) {
	return opVarDim.tensor(newArgs().T(t).Ints(dims).Bool(unbiased).Bool(keepDim))
}

// All reports whether every element is true (non-zero).
func (t *Tensor) All() (bool, error) {
	r, err := opAll.tensor(newArgs().T(t))
	if err != nil {
		return false, err
	}
	defer r.Free()
	v, err := r.Item()
	return v != 0, err
}

func pair(ts []*Tensor, err error) (*Tensor, *Tensor, error) {
	if err != nil {
		return nil, nil, err
	}
	if len(ts) != 2 {
		freeTensors(ts)
		return nil, nil, &Error{Msg: "expected two results"}
	}
	return ts[0], ts[1], nil
}
