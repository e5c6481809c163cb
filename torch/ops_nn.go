package torch

// Reduction says how a loss combines its per-sample values.
type Reduction int64

// Reductions. The zero value is the mean, PyTorch's default.
const (
	ReduceMean Reduction = iota
	ReduceSum
	ReduceNone
)

// code returns libtorch's code for r.
func (r Reduction) code() int64 {
	switch r {
	case ReduceNone:
		return 0
	case ReduceSum:
		return 2
	}
	return 1
}

var (
	opConv2d            = newOp("aten::conv2d", "")
	opBatchNorm         = newOp("aten::batch_norm", "")
	opBatchNormStats    = newOp("aten::batch_norm_update_stats", "")
	opRelu              = newOp("aten::relu", "")
	opReluInplace       = newOp("aten::relu_", "")
	opMaxPool2d         = newOp("aten::max_pool2d", "")
	opAdaptiveAvgPool2d = newOp("aten::adaptive_avg_pool2d", "")
	opAdaptiveMaxPool2d = newOp("aten::adaptive_max_pool2d", "")
	opLinear            = newOp("aten::linear", "")
	opDropout           = newOp("aten::dropout", "")
	opSoftmax           = newOp("aten::softmax", "int")
	opLogSoftmax        = newOp("aten::log_softmax", "int")
	opCrossEntropy      = newOp("aten::cross_entropy_loss", "")
	opNLLLoss           = newOp("aten::nll_loss", "")
	opMSELoss           = newOp("aten::mse_loss", "")
	opSigmoid           = newOp("aten::sigmoid", "")
	opOneHot            = newOp("aten::one_hot", "")
)

// Conv2dOptions are the hyper-parameters of a 2-d convolution. Zero values
// mean PyTorch's defaults (stride 1, padding 0, dilation 1, groups 1).
type Conv2dOptions struct {
	Stride, Padding, Dilation [2]int64
	Groups                    int64
}

func orOne(v [2]int64) []int64 {
	if v == [2]int64{} {
		return []int64{1, 1}
	}
	return v[:]
}

// Conv2d convolves x (N,C,H,W) with weight (O,C/groups,kH,kW); bias may be
// nil.
func Conv2d(x, weight, bias *Tensor, o Conv2dOptions) (*Tensor, error) {
	groups := o.Groups
	if groups == 0 {
		groups = 1
	}
	return opConv2d.tensor(newArgs().T(x).T(weight).OptT(bias).Ints(orOne(o.Stride)).
		Ints(o.Padding[:]).Ints(orOne(o.Dilation)).Int(groups))
}

// BatchNorm normalises x over all dimensions but the channel one (1). In
// training mode it uses the batch statistics and, when runningMean and
// runningVar are given, updates them in place with
// running = (1-momentum)*running + momentum*batch (unbiased variance), as
// PyTorch does. In eval mode it normalises with the running statistics.
// weight, bias, runningMean and runningVar may be nil.
func BatchNorm(x, weight, bias, runningMean, runningVar *Tensor, training bool, momentum, eps float64) (*Tensor, error) {
	return opBatchNorm.tensor(newArgs().T(x).OptT(weight).OptT(bias).OptT(runningMean).OptT(runningVar).
		Bool(training).Double(momentum).Double(eps).Bool(true))
}

// BatchNormStats returns the per-channel mean and biased variance of x
// (N, C, ...) over every dimension but the channel one (1), as
// BatchNorm's training mode computes them: libtorch's
// batch_norm_update_stats without running statistics. On the CPU it is
// one kernel that accumulates in float64, many times faster than Var over
// the same dimensions on a channels-last x (about 13 times for ResNet50's
// layer1 activations).
func BatchNormStats(x *Tensor) (mean, variance *Tensor, err error) {
	return pair(opBatchNormStats.tensors(newArgs().T(x).None().None().Double(0)))
}

// Relu returns max(x, 0).
func (t *Tensor) Relu() (*Tensor, error) { return opRelu.tensor(newArgs().T(t)) }

// Relu_ applies max(x, 0) in place.
func (t *Tensor) Relu_() error { return opReluInplace.inplace(newArgs().T(t)) }

// Sigmoid returns 1/(1+e^-x).
func (t *Tensor) Sigmoid() (*Tensor, error) { return opSigmoid.tensor(newArgs().T(t)) }

// MaxPool2dOptions are max pooling's hyper-parameters; a zero Stride means
// the kernel size, a zero Dilation means 1.
type MaxPool2dOptions struct {
	Kernel, Stride, Padding, Dilation [2]int64
	CeilMode                          bool
}

// MaxPool2d takes the maximum over windows of x (N,C,H,W).
func MaxPool2d(x *Tensor, o MaxPool2dOptions) (*Tensor, error) {
	stride := o.Stride
	if stride == [2]int64{} {
		stride = o.Kernel
	}
	return opMaxPool2d.tensor(newArgs().T(x).Ints(o.Kernel[:]).Ints(stride[:]).Ints(o.Padding[:]).
		Ints(orOne(o.Dilation)).Bool(o.CeilMode))
}

// AdaptiveAvgPool2d averages x (N,C,H,W) down to the output size (h, w).
func AdaptiveAvgPool2d(x *Tensor, h, w int64) (*Tensor, error) {
	return opAdaptiveAvgPool2d.tensor(newArgs().T(x).Ints([]int64{h, w}))
}

// AdaptiveMaxPool2d takes maxima of x (N,C,H,W) down to the output size
// (h, w); it returns the values and their indices.
func AdaptiveMaxPool2d(x *Tensor, h, w int64) (values, indices *Tensor, err error) {
	return pair(opAdaptiveMaxPool2d.tensors(newArgs().T(x).Ints([]int64{h, w})))
}

// Linear returns x·weightᵀ + bias; bias may be nil.
func Linear(x, weight, bias *Tensor) (*Tensor, error) {
	return opLinear.tensor(newArgs().T(x).T(weight).OptT(bias))
}

// Dropout zeroes elements with probability p and scales the rest by
// 1/(1-p) when train is true; otherwise it returns x unchanged.
func Dropout(x *Tensor, p float64, train bool) (*Tensor, error) {
	return opDropout.tensor(newArgs().T(x).Double(p).Bool(train))
}

// Softmax returns the softmax of x along dim.
func Softmax(x *Tensor, dim int64) (*Tensor, error) {
	return opSoftmax.tensor(newArgs().T(x).Int(dim))
}

// LogSoftmax returns the log of the softmax of x along dim.
func LogSoftmax(x *Tensor, dim int64) (*Tensor, error) {
	return opLogSoftmax.tensor(newArgs().T(x).Int(dim))
}

// LossOptions configure cross entropy and NLL losses. The zero value is
// PyTorch's default: mean reduction, no class weights, ignore_index -100,
// no label smoothing.
type LossOptions struct {
	Weight         *Tensor
	Reduction      Reduction
	IgnoreIndex    *int64
	LabelSmoothing float64
}

func (o LossOptions) ignoreIndex() int64 {
	if o.IgnoreIndex == nil {
		return -100
	}
	return *o.IgnoreIndex
}

// CrossEntropy is the cross entropy between logits (N,C) and int64 class
// targets (N), as torch.nn.functional.cross_entropy.
func CrossEntropy(logits, target *Tensor, o LossOptions) (*Tensor, error) {
	return opCrossEntropy.tensor(newArgs().T(logits).T(target).OptT(o.Weight).Int(o.Reduction.code()).
		Int(o.ignoreIndex()).Double(o.LabelSmoothing))
}

// NLLLoss is the negative log likelihood of log-probabilities (N,C) at
// int64 class targets (N).
func NLLLoss(logProbs, target *Tensor, o LossOptions) (*Tensor, error) {
	return opNLLLoss.tensor(newArgs().T(logProbs).T(target).OptT(o.Weight).Int(o.Reduction.code()).
		Int(o.ignoreIndex()))
}

// MSELoss is the mean (or summed) squared error.
func MSELoss(x, target *Tensor, r Reduction) (*Tensor, error) {
	return opMSELoss.tensor(newArgs().T(x).T(target).Int(r.code()))
}

// OneHot returns int64 one-hot vectors of numClasses for int64 labels.
func OneHot(labels *Tensor, numClasses int64) (*Tensor, error) {
	return opOneHot.tensor(newArgs().T(labels).Int(numClasses))
}
