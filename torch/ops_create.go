package torch

// Option configures a tensor factory. DType, Device and *Generator are
// options, so a call reads like PyTorch's:
//
//	torch.Randn([]int64{2, 3}, torch.Float64, gen)
type Option interface{ apply(*factory) }

type factory struct {
	dtype    DType
	hasDType bool
	device   Device
	hasDev   bool
	gen      *Generator
}

func (d DType) apply(f *factory)      { f.dtype, f.hasDType = d, true }
func (d Device) apply(f *factory)     { f.device, f.hasDev = d, true }
func (g *Generator) apply(f *factory) { f.gen = g }

func factoryOf(opts []Option) factory {
	var f factory
	for _, o := range opts {
		if o != nil {
			o.apply(&f)
		}
	}
	return f
}

// tail adds the (dtype, layout, device, pin_memory) keyword arguments.
func (f factory) tail(a *args) *args {
	if f.hasDType {
		a.DType(f.dtype)
	} else {
		a.None()
	}
	a.None()
	if f.hasDev {
		a.Device(f.device)
	} else {
		a.None()
	}
	return a.None()
}

var (
	opZeros       = newOp("aten::zeros", "")
	opOnes        = newOp("aten::ones", "")
	opFull        = newOp("aten::full", "")
	opArange      = newOp("aten::arange", "start_step")
	opRand        = newOp("aten::rand", "generator")
	opRandn       = newOp("aten::randn", "generator")
	opRandint     = newOp("aten::randint", "low_generator")
	opRandperm    = newOp("aten::randperm", "generator")
	opZerosLike   = newOp("aten::zeros_like", "")
	opOnesLike    = newOp("aten::ones_like", "")
	opEmpty       = newOp("aten::empty", "memory_format")
	opNormal      = newOp("aten::normal_", "")
	opUniform     = newOp("aten::uniform_", "")
	opBernoulliP  = newOp("aten::bernoulli_", "float")
	opFillScalar  = newOp("aten::fill_", "Scalar")
	opZero        = newOp("aten::zero_", "")
	opCopyInplace = newOp("aten::copy_", "")
)

// Zeros returns a tensor of zeros (float32 on the CPU unless opts say
// otherwise).
func Zeros(shape []int64, opts ...Option) (*Tensor, error) {
	return opZeros.tensor(factoryOf(opts).tail(newArgs().Ints(shape)))
}

// Ones returns a tensor of ones.
func Ones(shape []int64, opts ...Option) (*Tensor, error) {
	return opOnes.tensor(factoryOf(opts).tail(newArgs().Ints(shape)))
}

// Empty returns an uninitialised tensor.
func Empty(shape []int64, opts ...Option) (*Tensor, error) {
	return opEmpty.tensor(factoryOf(opts).tail(newArgs().Ints(shape)))
}

// Full returns a tensor filled with v. Without a DType option it is float32.
func Full(shape []int64, v float64, opts ...Option) (*Tensor, error) {
	f := factoryOf(opts)
	if !f.hasDType {
		Float32.apply(&f)
	}
	return opFull.tensor(f.tail(newArgs().Ints(shape).Double(v)))
}

// Arange returns the values start, start+step, ... below end. Without a
// DType option it is float32.
func Arange(start, end, step float64, opts ...Option) (*Tensor, error) {
	f := factoryOf(opts)
	if !f.hasDType {
		Float32.apply(&f)
	}
	return opArange.tensor(f.tail(newArgs().Double(start).Double(end).Double(step)))
}

// Rand returns values drawn uniformly from [0, 1).
func Rand(shape []int64, opts ...Option) (*Tensor, error) {
	f := factoryOf(opts)
	return opRand.tensor(f.tail(newArgs().Ints(shape).Gen(f.gen)))
}

// Randn returns values drawn from the standard normal distribution.
func Randn(shape []int64, opts ...Option) (*Tensor, error) {
	f := factoryOf(opts)
	return opRandn.tensor(f.tail(newArgs().Ints(shape).Gen(f.gen)))
}

// Randint returns int64 values drawn uniformly from [low, high).
func Randint(low, high int64, shape []int64, opts ...Option) (*Tensor, error) {
	f := factoryOf(opts)
	if !f.hasDType {
		Int64.apply(&f)
	}
	return opRandint.tensor(f.tail(newArgs().Int(low).Int(high).Ints(shape).Gen(f.gen)))
}

// Randperm returns a random permutation of 0..n-1 as int64.
func Randperm(n int64, opts ...Option) (*Tensor, error) {
	f := factoryOf(opts)
	if !f.hasDType {
		Int64.apply(&f)
	}
	return opRandperm.tensor(f.tail(newArgs().Int(n).Gen(f.gen)))
}

// ZerosLike returns zeros with t's shape, dtype and device.
func (t *Tensor) ZerosLike() (*Tensor, error) { return opZerosLike.tensor(newArgs().T(t)) }

// OnesLike returns ones with t's shape, dtype and device.
func (t *Tensor) OnesLike() (*Tensor, error) { return opOnesLike.tensor(newArgs().T(t)) }

// Normal_ fills t in place with draws from N(mean, std²); g may be nil.
func (t *Tensor) Normal_(mean, std float64, g *Generator) error {
	return opNormal.inplace(newArgs().T(t).Double(mean).Double(std).Gen(g))
}

// Uniform_ fills t in place with draws from U[from, to); g may be nil.
func (t *Tensor) Uniform_(from, to float64, g *Generator) error {
	return opUniform.inplace(newArgs().T(t).Double(from).Double(to).Gen(g))
}

// Bernoulli_ fills t in place with 1 with probability p, else 0.
func (t *Tensor) Bernoulli_(p float64, g *Generator) error {
	return opBernoulliP.inplace(newArgs().T(t).Double(p).Gen(g))
}

// Fill_ sets every element of t to v.
func (t *Tensor) Fill_(v float64) error { return opFillScalar.inplace(newArgs().T(t).Double(v)) }

// Zero_ sets every element of t to zero.
func (t *Tensor) Zero_() error { return opZero.inplace(newArgs().T(t)) }

// Copy_ copies src into t in place (broadcasting, converting dtype and
// device as needed).
func (t *Tensor) Copy_(src *Tensor) error { return opCopyInplace.inplace(newArgs().T(t).T(src)) }
