package finetune

// Plan is every decision a run makes before its first epoch, resolved
// once from the Config and the data and never changed afterwards: the
// loop trains exactly this. It is printed with its reasons, stored in
// every checkpoint (a resumed run trains the same plan) and returned in
// Result.
type Plan struct {
	// Device is where the run computes ("cpu", "cuda:0").
	Device string `json:"device"`
	// Precision is fp32, bf16 or fp16 (autocast).
	Precision    string `json:"precision"`
	ChannelsLast bool   `json:"channels_last"`
	// BatchNorm is the mode used: frozen, train, adapt or legacy (auto
	// resolved).
	BatchNorm string `json:"batchnorm"`
	// Decisions lists every automatic choice with its reason, in the
	// order it was made.
	Decisions []Decision `json:"decisions"`
}

// Decision is one automatic choice of a Plan: the configuration key it
// settles, the value chosen and why.
type Decision struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
}
