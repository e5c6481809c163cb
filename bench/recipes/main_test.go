package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/finetune"
)

// TestSetKey: -set parses a value as a config file does, the stages'
// compact form and lists included, and names a bad key.
func TestSetKey(t *testing.T) {
	for _, tc := range []struct {
		kv   string
		want func(*finetune.Config)
		err  string
	}{
		{kv: "model.head.dropout=0.2", want: func(c *finetune.Config) { c.Model.Head.Dropout = 0.2 }},
		{kv: "augment.scale=[0.85, 1]", want: func(c *finetune.Config) { c.Augment.Scale = [2]float64{0.85, 1} }},
		{kv: "stages=head:5:all,finetune:15:layer3:0.1", want: func(c *finetune.Config) {
			c.Stages = []finetune.Stage{{Name: "head", Epochs: 5, Freeze: "all", BackboneLRMult: 0.1},
				{Name: "finetune", Epochs: 15, Freeze: "layer3", BackboneLRMult: 0.1}}
		}},
		{kv: "probe_fallback=false", want: func(c *finetune.Config) { c.ProbeFallback = false }},
		{kv: "train.lrr=1", err: `unknown config key "train.lrr" (did you mean "train.lr"?)`},
		{kv: "train.lr", err: "want KEY=VALUE"},
	} {
		t.Run(tc.kv, func(t *testing.T) {
			got, err := setKey(finetune.Defaults(), tc.kv)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			want := finetune.Defaults()
			tc.want(&want)
			require.Equal(t, want, got)
		})
	}
}

// TestParseScreen reads the screening tasks and refuses a task without
// its image variant.
func TestParseScreen(t *testing.T) {
	got, err := parseScreen("0-6:original, 2-4:inverted")
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "pullover/coat", got[1].pair.Name())
	require.Equal(t, "inverted", got[1].variant.Name)
	_, err = parseScreen("0-6")
	require.ErrorContains(t, err, "want PAIR:VARIANT")
}

// TestOldDefaultsTrial: the first trial's keys turn the defaults into
// those before issue 18, so its cached runs measure what they claim.
func TestOldDefaultsTrial(t *testing.T) {
	got := finetune.Defaults()
	for _, kv := range trials[0].sets {
		var err error
		got, err = setKey(got, kv)
		require.NoError(t, err)
	}
	want := finetune.Defaults()
	want.Model.Head.Dropout, want.Train.LabelSmoothing, want.Train.LR = 0.2, 0.1, 1e-3
	want.Augment.Scale = [2]float64{0.7, 1}
	want.Augment.Brightness, want.Augment.Contrast, want.Augment.Saturation = 0.2, 0.2, 0.2
	want.Stages = []finetune.Stage{{Name: "head", Epochs: 5, Freeze: "all", BackboneLRMult: 0.1},
		{Name: "finetune", Epochs: 15, Freeze: "layer3", BackboneLRMult: 0.1}}
	require.Equal(t, want, got)
}
