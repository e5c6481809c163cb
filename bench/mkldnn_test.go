package bench

import (
	"testing"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// TestMkldnnMatchesModel checks the experiment's backbone against the
// model it was folded from, in evaluation mode.
func TestMkldnnMatchesModel(t *testing.T) {
	torch.ManualSeed(1)
	in, err := NewInfer("resnet18", 2, 64, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Statistics and affine parameters other than the initial ones, so
	// that the fold matters.
	err = torch.NoGrad(func() error {
		return nn.Walk(in.Model, func(_ string, m nn.Module) error {
			bn, ok := m.(*nn.BatchNorm)
			if !ok {
				return nil
			}
			for _, e := range []error{
				bn.Buffer("running_mean").Normal_(0, 0.2, nil),
				bn.Buffer("running_var").Uniform_(0.5, 2, nil),
				bn.Parameter("weight").Uniform_(0.5, 1.5, nil),
				bn.Parameter("bias").Normal_(0, 0.2, nil),
			} {
				if e != nil {
					return e
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	s := torch.NewScope()
	defer s.Close()
	mb, err := FoldMkldnn(in.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Free()
	var want, got *torch.Tensor
	err = torch.NoGrad(func() error {
		var err error
		if want, err = in.Model.Pooled(in.X); err != nil {
			return err
		}
		got, err = mb.Pooled(in.X)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := got.Sub(want)
	if err != nil {
		t.Fatal(err)
	}
	if d, err = d.Abs(); err != nil {
		t.Fatal(err)
	}
	if d, err = d.Max(); err != nil {
		t.Fatal(err)
	}
	v, err := d.Item()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("max difference %g", v)
	if v > 1e-4 {
		t.Fatalf("max difference %g from the model's pooled features", v)
	}
}
