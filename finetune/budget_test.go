package finetune

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

func TestParseMaxTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "auto", want: -1},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "90s", want: 90 * time.Second},
		{in: "20m", want: 20 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "", bad: true},
		{in: "90", bad: true},
		{in: "-5m", bad: true},
		{in: "soon", bad: true},
	} {
		got, err := parseMaxTime(tc.in)
		c := Defaults()
		c.Data.Train, c.Train.MaxTime = "x", tc.in
		if tc.bad {
			require.Error(t, err, tc.in)
			require.EqualError(t, c.Validate(), `config: train.max_time: "`+tc.in+`" is not auto, 0 (none) or a duration such as 90s, 20m or 1h30m`)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
		require.NoError(t, c.Validate(), tc.in)
	}
}

// TestFitStages: the plan keeps of each stage, in order, the epochs its
// estimate fits in the budget left after the time spent (10 s here) and
// the final passes (20 s); the first stage's once-computed features
// were computed while the plan was made. A stage no epoch of which
// fits is dropped, saying how to give it the time, except a first stage
// that must train a random head.
func TestFitStages(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return t0.Add(10 * time.Second) }
	for _, tc := range []struct {
		name      string
		budget    float64
		head      string
		epochs    map[string]int
		decisions map[string]string
	}{
		{name: "all fit", budget: 1000, head: "probe", epochs: map[string]int{"head": 5, "ft": 5}, decisions: map[string]string{}},
		{name: "2 of 5", budget: 100, head: "probe", epochs: map[string]int{"head": 2},
			decisions: map[string]string{"stages[0].epochs": "2", "stages[1]": "dropped"}},
		{name: "none", budget: 25, head: "probe", epochs: map[string]int{},
			decisions: map[string]string{"stages[0]": "dropped", "stages[1]": "dropped", "stages": "none"}},
		{name: "random head", budget: 25, head: "random", epochs: map[string]int{"head": 1},
			decisions: map[string]string{"stages[0].epochs": "1", "stages[1]": "dropped"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &run{start: t0, ev: newEmitter(Options{}, -1)}
			plan := &Plan{MaxTime: tc.budget, HeadStart: tc.head, Stages: []PlanStage{
				{Name: "head", Epochs: 5, EpochSeconds: 30, OnceSeconds: 5, EstimatedSeconds: 155},
				{Name: "ft", Epochs: 5, EpochSeconds: 100, OnceSeconds: 50, EstimatedSeconds: 550},
			}}
			require.NoError(t, r.fitStages(plan, 20, &resolution{}))
			epochs := map[string]int{}
			for _, st := range plan.Stages {
				epochs[st.Name] = st.Epochs
				require.Equal(t, float64(st.Epochs)*st.EpochSeconds+st.OnceSeconds, st.EstimatedSeconds, st.Name)
			}
			require.Equal(t, tc.epochs, epochs)
			decisions := map[string]string{}
			for _, d := range plan.Decisions {
				decisions[d.Key] = d.Value
				if d.Value == "dropped" {
					// 10 s spent, 20 s of final passes, 155 + 550 s of
					// stages: 13 minutes.
					require.Contains(t, d.Reason, "--train.max_time 13m gives the whole recipe its estimated time")
				}
			}
			require.Equal(t, tc.decisions, decisions)
		})
	}
	r := &run{start: t0, ev: newEmitter(Options{}, -1)}
	plan := &Plan{MaxTime: 100, HeadStart: "probe", Stages: []PlanStage{{Name: "head", Epochs: 5, EpochSeconds: 30, EstimatedSeconds: 150}}}
	require.NoError(t, r.fitStages(plan, 20, &resolution{}))
	require.Equal(t, Decision{Key: "stages[0].epochs", Value: "2", Reason: "of 5: 1m10s left of train.max_time 1m40s, " +
		"an epoch takes about 30s; --train.max_time 3m gives the whole recipe its estimated time"}, plan.Decisions[0])
}

// TestOnceSecondsShrinksViews: a stage that keeps fewer epochs caches
// fewer augmented views of its activations, a view per pass over the
// images, and computes less once.
func TestOnceSecondsShrinksViews(t *testing.T) {
	// 10 views of 50 batches and 20 batches of evaluation images at 0.1 s
	// a batch.
	ps := PlanStage{Epochs: 10, StepsPerEpoch: 50, ActivationViews: 10, OnceSeconds: 52}
	half := ps
	half.StepsPerEpoch = 25
	for _, tc := range []struct {
		name      string
		ps        PlanStage
		epochs    int
		augmented bool
		once      float64
		views     int
	}{
		{"all epochs", ps, 10, true, 52, 10},
		{"2 epochs", ps, 2, true, 12, 2},
		{"3 epochs of half a pass", half, 3, true, 12, 2},
		{"no activations", PlanStage{Epochs: 10, OnceSeconds: 5}, 2, true, 5, 0},
		{"one view without augmentation", PlanStage{Epochs: 10, StepsPerEpoch: 50, ActivationViews: 1, OnceSeconds: 7}, 2, false, 7, 1},
	} {
		once, views := onceSeconds(tc.ps, tc.epochs, 50, 20, tc.augmented)
		require.InDelta(t, tc.once, once, 1e-9, tc.name)
		require.Equal(t, tc.views, views, tc.name)
	}
}

// fakeClock moves the loop's clock (now) by what the test adds to its
// offset, until the test ends.
func fakeClock(t *testing.T) *atomic.Int64 {
	var offset atomic.Int64
	real := now
	now = func() time.Time { return real().Add(time.Duration(offset.Load())) }
	t.Cleanup(func() { now = real })
	return &offset
}

// TestMaxTimePlan: a budget too small for any stage, with a head that
// starts as the probe, leaves the probe as the model, as recipe:
// linear-probe does; auto on the CPU is at least 2 minutes.
func TestMaxTimePlan(t *testing.T) {
	root := t.TempDir()
	writeSolid(t, root, 10)
	cfg := tinyConfig(t, root)
	cfg.Probe, cfg.ProbeFallback, cfg.Model.Head.Init = true, true, "probe"
	cfg.Stages = []Stage{{Name: "head", Epochs: 2, Freeze: "all"}, {Name: "ft", Epochs: 2, Freeze: "layer3", BackboneLRMult: 0.1}}
	cfg.Train.MaxTime = "1ms"
	opts, _ := recorded(cfg)
	res, err := Train(context.Background(), cfg, opts)
	require.NoError(t, err)
	nn.Free(res.Model)
	require.Empty(t, res.Plan.Stages)
	require.Empty(t, res.History)
	require.Subset(t, decisionKeys(res.Plan), []string{"stages[0]", "stages[1]", "stages"})
	require.Equal(t, *res.ProbeAccuracy, res.Val.Accuracy, "the probe is the model")
	require.FileExists(t, cfg.Output.Dir+"/result.json")
	require.NotEmpty(t, res.Checkpoints)

	cfg.Train.MaxTime = "auto"
	cfg.Output.Dir = t.TempDir() + "/auto"
	res, err = Train(context.Background(), cfg, Options{})
	require.NoError(t, err)
	nn.Free(res.Model)
	require.GreaterOrEqual(t, res.Plan.MaxTime, 120.0)
	require.Len(t, res.Plan.Stages, 2, "tiny stages fit")
	for _, d := range res.Plan.Decisions {
		if d.Key == "train.max_time" {
			require.Contains(t, d.Reason, "on the CPU, the larger of 2m0s and one epoch of a plain loop")
			return
		}
	}
	t.Fatal("no decision on train.max_time")
}

// TestMaxTimeStopsStages: when the clock passes the budget during a
// stage, the stage stops after the epoch, and a later one is skipped;
// a resumed run counts the time spent before the interruption.
func TestMaxTimeStopsStages(t *testing.T) {
	data := shapes(t, 6)
	offset := fakeClock(t)
	cfg := tinyConfig(t, data)
	cfg.Train.MaxTime = "1h"
	cfg.Stages = []Stage{{Name: "head", Epochs: 4, Freeze: "all"}, {Name: "ft", Epochs: 2, Freeze: "layer3", BackboneLRMult: 0.1}}
	var events []StageStop
	res, err := Train(context.Background(), cfg, Options{Observer: func(e Event) {
		switch {
		case e.Kind == EventEpoch && e.Epoch == 1:
			offset.Add(int64(2 * time.Hour))
		case e.Kind == EventStageStop:
			events = append(events, *e.Stop)
		}
	}})
	require.NoError(t, err)
	nn.Free(res.Model)
	require.Len(t, res.History, 2, "stopped after epoch 2: its check came after the clock moved")
	require.Equal(t, events, res.Stops)
	require.Len(t, res.Stops, 2)
	require.Equal(t, StageStop{Stage: "head", Epoch: 2, Reason: "max_time"}, StageStop{Stage: res.Stops[0].Stage, Epoch: res.Stops[0].Epoch, Reason: res.Stops[0].Reason})
	require.Regexp(t, `^stage head: stopped after epoch 2: 2h0m[0-9]+s of train.max_time 1h0m0s spent, and another epoch takes about `, res.Stops[0].Message)
	require.Equal(t, StageStop{Stage: "ft", Epoch: 0, Reason: "max_time"}, StageStop{Stage: res.Stops[1].Stage, Epoch: res.Stops[1].Epoch, Reason: res.Stops[1].Reason})
	require.Regexp(t, `^stage ft: skipped: 2h0m[0-9]+s of train.max_time 1h0m0s spent`, res.Stops[1].Message)

	offset.Store(0)
	cfg.Stages = cfg.Stages[:1]
	cfg.Output.Dir = t.TempDir() + "/interrupted"
	ctx, cancel := context.WithCancel(context.Background())
	_, rec := recorded(cfg)
	_, err = Train(ctx, cfg, Options{Recorder: rec, Observer: func(e Event) {
		if e.Kind == EventStep {
			offset.Store(int64(2 * time.Hour))
			cancel()
		}
	}})
	require.ErrorIs(t, err, ErrInterrupted)
	offset.Store(0)
	res, err = Train(context.Background(), cfg, Options{Recorder: rec, Resume: cfg.Output.Dir + "/" + lastCheckpoint})
	require.NoError(t, err)
	nn.Free(res.Model)
	require.Len(t, res.History, 1, "the 2 hours before the interruption count")
	require.Len(t, res.Stops, 1)
	require.Equal(t, "max_time", res.Stops[0].Reason)
}
