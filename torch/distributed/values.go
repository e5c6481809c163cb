package distributed

import "github.com/finetune-go/finetune/torch"

// AllReduceValues returns the reduction op of vals over the ranks, element
// by element: metrics summed over the ranks, say. Every rank passes as
// many values.
func AllReduceValues[T torch.Element](pg *ProcessGroup, op ReduceOp, vals ...T) ([]T, error) {
	return roundTrip(pg, vals, func(t *torch.Tensor) error { return pg.AllReduce([]*torch.Tensor{t}, op) })
}

// BroadcastValues returns root's vals on every rank: the decision of one
// rank, made the decision of all.
func BroadcastValues[T torch.Element](pg *ProcessGroup, root int, vals ...T) ([]T, error) {
	return roundTrip(pg, vals, func(t *torch.Tensor) error { return pg.Broadcast([]*torch.Tensor{t}, root) })
}

// roundTrip puts vals in a tensor on pg's device, runs f on it and reads
// it back.
func roundTrip[T torch.Element](pg *ProcessGroup, vals []T, f func(*torch.Tensor) error) ([]T, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	s := torch.NewScope()
	defer s.Close()
	t, err := torch.FromSlice(vals)
	if err != nil {
		return nil, err
	}
	if t, err = t.ToDevice(pg.Device()); err != nil {
		return nil, err
	}
	if err := f(t); err != nil {
		return nil, err
	}
	return torch.Data[T](t)
}
