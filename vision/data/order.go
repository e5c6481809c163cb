package data

// Order returns the positions (indexes into the indices given to
// NewBatchLoader) in the order epoch visits them, so that a consumer can
// follow an epoch without loading it (training on cached features, say).
func (bl *BatchLoader) Order(epoch int) []int { return bl.order(epoch) }

// Bounds returns the batches of an epoch as half-open ranges of positions
// in Order.
func (bl *BatchLoader) Bounds() [][2]int { return bl.bounds }
