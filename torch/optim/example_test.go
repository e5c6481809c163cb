package optim_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/optim"
)

// ExampleSGD fits y = 2x + 1 with SGD and momentum, dividing the learning
// rate by ten for the last quarter of the steps, as a step-decay scheduler
// would.
func ExampleSGD() {
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
	opt, err := optim.NewSGD(optim.ParamGroup{Params: []*torch.Tensor{w, b}, LR: 0.1, Momentum: 0.9})
	if err != nil {
		panic(err)
	}

	step := func() error {
		s := torch.NewScope() // frees the step's intermediates
		defer s.Close()
		pred, err := torch.Linear(x, w, b)
		if err != nil {
			return err
		}
		loss, err := torch.MSELoss(pred, y, torch.ReduceMean)
		if err != nil {
			return err
		}
		if err := opt.ZeroGrad(); err != nil {
			return err
		}
		if err := loss.Backward(); err != nil {
			return err
		}
		return opt.Step()
	}
	for epoch := range 200 {
		if epoch == 150 {
			for _, g := range opt.Groups() {
				g.LR *= 0.1 // takes effect on the next Step
			}
		}
		if err := step(); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Printf("w=%.3f b=%.3f lr=%.3g\n", torch.Must(w.Item()), torch.Must(b.Item()), opt.Groups()[0].LR)
	// Output: w=2.000 b=1.000 lr=0.01
}

// ExampleNewAdamW exempts a bias from weight decay with a second group and
// shows the state a checkpoint stores: named tensors and JSON.
func ExampleNewAdamW() {
	w := torch.Must(torch.Ones([]int64{2, 2}))
	b := torch.Must(torch.Zeros([]int64{2}))
	decay := optim.AdamWGroup(w)
	noDecay := optim.AdamWGroup(b)
	noDecay.WeightDecay = 0
	opt, err := optim.NewAdamW(decay, noDecay)
	if err != nil {
		panic(err)
	}
	for _, p := range []*torch.Tensor{w, b} {
		if err := p.SetGrad(torch.Must(p.OnesLike())); err != nil {
			panic(err)
		}
	}
	if err := opt.Step(); err != nil {
		panic(err)
	}

	st, err := opt.State()
	if err != nil {
		panic(err)
	}
	defer st.Free()
	fmt.Println(slices.Sorted(maps.Keys(st.Tensors)))
	meta, err := json.Marshal(st)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(meta))
	// Output:
	// [state.0.exp_avg state.0.exp_avg_sq state.0.step state.1.exp_avg state.1.exp_avg_sq state.1.step]
	// {"optimizer":"AdamW","param_groups":[{"params":[0],"lr":0.001,"weight_decay":0.01,"betas":[0.9,0.999],"eps":1e-8},{"params":[1],"lr":0.001,"weight_decay":0,"betas":[0.9,0.999],"eps":1e-8}]}
}
