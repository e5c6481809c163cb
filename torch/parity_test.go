package torch_test

import (
	"testing"

	"github.com/finetune-go/finetune/internal/testref"
	. "github.com/finetune-go/finetune/torch"
	"github.com/stretchr/testify/require"
)

type fixtureCase struct {
	Name    string            `json:"name"`
	Seed    *uint64           `json:"seed"`
	Inputs  []*testref.Tensor `json:"inputs"`
	Outputs []*testref.Tensor `json:"outputs"`
	Cots    []*testref.Tensor `json:"cots"`
	Grads   []*testref.Tensor `json:"grads"`
	State   []*testref.Tensor `json:"state"`
	StateAt []int             `json:"state_index"`
}

type opFunc func(in []*Tensor) ([]*Tensor, error)

func one(t *Tensor, err error) ([]*Tensor, error) { return []*Tensor{t}, err }

func two(a, b *Tensor, err error) ([]*Tensor, error) { return []*Tensor{a, b}, err }

var parityOps = map[string]opFunc{
	"conv2d": func(in []*Tensor) ([]*Tensor, error) {
		return one(Conv2d(in[0], in[1], in[2], Conv2dOptions{Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}}))
	},
	"conv2d_groups": func(in []*Tensor) ([]*Tensor, error) {
		return one(Conv2d(in[0], in[1], nil, Conv2dOptions{Padding: [2]int64{2, 2}, Dilation: [2]int64{2, 2}, Groups: 3}))
	},
	"batch_norm_train": func(in []*Tensor) ([]*Tensor, error) {
		return one(BatchNorm(in[0], in[1], in[2], in[3], in[4], true, 0.1, 1e-5))
	},
	"batch_norm_eval": func(in []*Tensor) ([]*Tensor, error) {
		return one(BatchNorm(in[0], in[1], in[2], in[3], in[4], false, 0.1, 1e-5))
	},
	"relu": func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Relu()) },
	"max_pool2d": func(in []*Tensor) ([]*Tensor, error) {
		return one(MaxPool2d(in[0], MaxPool2dOptions{Kernel: [2]int64{3, 3}, Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}}))
	},
	"adaptive_avg_pool2d":    func(in []*Tensor) ([]*Tensor, error) { return one(AdaptiveAvgPool2d(in[0], 1, 1)) },
	"adaptive_avg_pool2d_23": func(in []*Tensor) ([]*Tensor, error) { return one(AdaptiveAvgPool2d(in[0], 2, 3)) },
	"adaptive_max_pool2d":    func(in []*Tensor) ([]*Tensor, error) { return two(AdaptiveMaxPool2d(in[0], 2, 2)) },
	"linear":                 func(in []*Tensor) ([]*Tensor, error) { return one(Linear(in[0], in[1], in[2])) },
	"dropout":                func(in []*Tensor) ([]*Tensor, error) { return one(Dropout(in[0], 0.3, true)) },
	"dropout_eval":           func(in []*Tensor) ([]*Tensor, error) { return one(Dropout(in[0], 0.3, false)) },
	"softmax":                func(in []*Tensor) ([]*Tensor, error) { return one(Softmax(in[0], 1)) },
	"log_softmax":            func(in []*Tensor) ([]*Tensor, error) { return one(LogSoftmax(in[0], 1)) },
	"cross_entropy": func(in []*Tensor) ([]*Tensor, error) {
		return one(CrossEntropy(in[0], in[1], LossOptions{}))
	},
	"cross_entropy_weighted_smooth": func(in []*Tensor) ([]*Tensor, error) {
		return one(CrossEntropy(in[0], in[1], LossOptions{Weight: in[2], LabelSmoothing: 0.1}))
	},
	"cross_entropy_sum": func(in []*Tensor) ([]*Tensor, error) {
		return one(CrossEntropy(in[0], in[1], LossOptions{Reduction: ReduceSum}))
	},
	"cross_entropy_none": func(in []*Tensor) ([]*Tensor, error) {
		return one(CrossEntropy(in[0], in[1], LossOptions{Reduction: ReduceNone}))
	},
	"nll_loss": func(in []*Tensor) ([]*Tensor, error) {
		return one(NLLLoss(Must(LogSoftmax(in[0], 1)), in[1], LossOptions{}))
	},
	"mse_loss":      func(in []*Tensor) ([]*Tensor, error) { return one(MSELoss(in[0], in[1], ReduceMean)) },
	"reshape":       func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Reshape(4, -1)) },
	"permute":       func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Permute(2, 0, 1)) },
	"transpose":     func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Transpose(0, 1)) },
	"cat":           func(in []*Tensor) ([]*Tensor, error) { return one(Cat(in[:2], 1)) },
	"stack":         func(in []*Tensor) ([]*Tensor, error) { return one(Stack(in[:2], 0)) },
	"narrow":        func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Narrow(1, 1, 2)) },
	"index_select":  func(in []*Tensor) ([]*Tensor, error) { return one(in[0].IndexSelect(1, in[1])) },
	"gather":        func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Gather(1, in[1])) },
	"squeeze":       func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Squeeze()) },
	"unsqueeze":     func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Unsqueeze(1)) },
	"flatten":       func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Flatten(1, -1)) },
	"flip":          func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Flip(0, 1)) },
	"add":           func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Add(in[1])) },
	"add_broadcast": func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Add(in[1])) },
	"sub":           func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Sub(in[1])) },
	"mul":           func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Mul(in[1])) },
	"div":           func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Div(in[1])) },
	"eq":            func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Eq(in[1])) },
	"lt":            func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Lt(in[1])) },
	"ge":            func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Ge(in[1])) },
	"where":         func(in []*Tensor) ([]*Tensor, error) { return one(Where(in[0], in[1], in[2])) },
	"clamp":         func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Clamp(-0.5, 0.5)) },
	"exp":           func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Exp()) },
	"log":           func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Log()) },
	"sqrt":          func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Sqrt()) },
	"pow":           func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Pow(3)) },
	"abs":           func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Abs()) },
	"sum":           func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Sum()) },
	"sum_dims":      func(in []*Tensor) ([]*Tensor, error) { return one(in[0].SumDims([]int64{0, 2}, true)) },
	"mean":          func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Mean()) },
	"mean_dims":     func(in []*Tensor) ([]*Tensor, error) { return one(in[0].MeanDims([]int64{1}, false)) },
	"max_dim":       func(in []*Tensor) ([]*Tensor, error) { return two(in[0].MaxDim(1, false)) },
	"min_dim":       func(in []*Tensor) ([]*Tensor, error) { return two(in[0].MinDim(0, false)) },
	"argmax":        func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Argmax(1, false)) },
	"std":           func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Std([]int64{1}, true, false)) },
	"var_biased":    func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Var([]int64{0}, false, true)) },
	"matmul":        func(in []*Tensor) ([]*Tensor, error) { return one(in[0].Matmul(in[1])) },
}

// TestOpParity checks every op family's values and gradients against
// PyTorch on the same inputs.
func TestOpParity(t *testing.T) {
	var f struct {
		Cases []fixtureCase `json:"cases"`
	}
	testref.JSON(t, "torch_ops.py", &f)
	cases := map[string]fixtureCase{}
	for _, c := range f.Cases {
		cases[c.Name] = c
	}
	for name := range cases {
		require.Contains(t, parityOps, name, "fixture case without a Go counterpart")
	}
	for name, fn := range parityOps {
		t.Run(name, func(t *testing.T) {
			c, ok := cases[name]
			require.True(t, ok, "no reference case %q", name)
			s := NewScope()
			defer s.Close()
			stateful := map[int]bool{}
			for _, i := range c.StateAt {
				stateful[i] = true
			}
			in := make([]*Tensor, len(c.Inputs))
			for i, f := range c.Inputs {
				in[i] = f.Torch(t)
				if f.DType == "float32" && !stateful[i] && c.Grads[i] != nil {
					require.NoError(t, in[i].SetRequiresGrad(true))
				}
			}
			if c.Seed != nil {
				ManualSeed(*c.Seed)
			}
			out, err := fn(in)
			require.NoError(t, err)
			require.Len(t, out, len(c.Outputs))
			var loss *Tensor
			for i, want := range c.Outputs {
				testref.RequireClose(t, want, out[i], 1e-5, 1e-6, "output")
				if c.Cots[i] == nil || !out[i].RequiresGrad() {
					continue
				}
				term := Must(Must(out[i].Mul(c.Cots[i].Torch(t))).Sum())
				if loss == nil {
					loss = term
				} else {
					loss = Must(loss.Add(term))
				}
			}
			if loss != nil {
				require.NoError(t, loss.Backward())
			}
			for i, want := range c.Grads {
				if want == nil {
					continue
				}
				testref.RequireClose(t, want, Must(in[i].Grad()), 1e-5, 1e-6, "gradient")
			}
			for i, want := range c.State {
				testref.RequireClose(t, want, in[c.StateAt[i]], 1e-5, 1e-6, "state after call")
			}
		})
	}
}
