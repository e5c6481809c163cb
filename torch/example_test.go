package torch_test

import (
	"fmt"

	"github.com/finetune-go/finetune/torch"
)

// Example fits y = 2x + 1 with a one-weight linear model and plain SGD.
func Example() {
	torch.ManualSeed(0)
	x := torch.Must(torch.Randn([]int64{64, 1}))
	y := torch.Must(torch.Must(x.MulScalar(2)).AddScalar(1))

	w := torch.Must(torch.Zeros([]int64{1, 1}))
	b := torch.Must(torch.Zeros([]int64{1}))
	for _, p := range []*torch.Tensor{w, b} {
		if err := p.SetRequiresGrad(true); err != nil {
			panic(err)
		}
	}

	step := func() error {
		s := torch.NewScope() // every intermediate below dies with s
		defer s.Close()
		pred, err := torch.Linear(x, w, b)
		if err != nil {
			return err
		}
		loss, err := torch.MSELoss(pred, y, torch.ReduceMean)
		if err != nil {
			return err
		}
		if err := loss.Backward(); err != nil {
			return err
		}
		return torch.NoGrad(func() error {
			for _, p := range []*torch.Tensor{w, b} {
				g, err := p.Grad()
				if err != nil {
					return err
				}
				if err := p.Add_(g, -0.1); err != nil {
					return err
				}
				if err := p.ClearGrad(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for range 200 {
		if err := step(); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Printf("w=%.3f b=%.3f\n", torch.Must(w.Item()), torch.Must(b.Item()))
	// Output: w=2.000 b=1.000
}
