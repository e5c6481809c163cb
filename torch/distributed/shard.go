package distributed

// Shard returns rank's part of an epoch's order (the same on every rank:
// drawn from the same seed) as torch.utils.data.DistributedSampler takes
// it: positions rank, rank+world, rank+2·world… of the order, after
// padding it with its first elements to a multiple of world, so that
// every rank gets ceil(len(order)/world) samples and as many batches.
// The parts are disjoint but for the padding and together cover the
// order.
func Shard(order []int, rank, world int) []int {
	if world <= 1 || len(order) == 0 {
		return order
	}
	per := (len(order) + world - 1) / world
	out := make([]int, per)
	for i := range out {
		out[i] = order[(rank+i*world)%len(order)]
	}
	return out
}
