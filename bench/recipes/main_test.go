package main

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/bench/internal/fmtasks"
	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/demo"
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

// TestParseOnly: -only defaults to the settings the network can run and
// refuses one it cannot, saying why.
func TestParseOnly(t *testing.T) {
	for _, tc := range []struct {
		only, arch string
		want       []string // nil: every setting
		err        string
	}{
		{only: "", arch: "resnet18"},
		{only: "", arch: "mobilenet_v3_small", want: []string{"adapt", "default", "frozen", "grid", "legacy", "probe", "train"}},
		{only: "", arch: "convnext_tiny", want: []string{"default", "probe"}},
		{only: "default, probe", arch: "efficientnet_b0", want: []string{"default", "probe"}},
		{only: "frozen", arch: "convnext_tiny", err: "frozen does not apply to convnext_tiny: convnext_tiny has no BatchNorm layers"},
		{only: "recipe-auto", arch: "efficientnet_b0", err: "recipe-auto does not apply to efficientnet_b0: recipe: auto's freeze rule"},
		{only: "defualt", arch: "resnet18", err: `"defualt" is not one of`},
	} {
		t.Run(tc.only+"/"+tc.arch, func(t *testing.T) {
			got, err := parseOnly(tc.only, tc.arch)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			if tc.want == nil {
				require.Nil(t, got)
				return
			}
			require.Equal(t, tc.want, slices.Sorted(maps.Keys(got)))
		})
	}
}

// TestConfigArch: -arch's runs and source model are valid
// configurations of that network, its runs written apart from
// resnet18's.
func TestConfigArch(t *testing.T) {
	task := fmtasks.Task{Root: filepath.Join("work", "data", "0-6-original-300-1000")}
	for _, arch := range []string{"resnet18", "mobilenet_v3_small", "convnext_tiny"} {
		o := options{arch: arch, work: "work", precision: "auto"}
		cfg, err := config(o, task, "source.safetensors", 42, "default")
		require.NoError(t, err)
		require.Equal(t, arch, cfg.Model.Arch)
		require.NoError(t, cfg.Validate())
		require.Equal(t, arch != "resnet18", strings.Contains(cfg.Output.Dir, arch), cfg.Output.Dir)
		src := demo.SourceConfig("source", "out", arch, fmtasks.ImageSize, 4, "cpu")
		require.NoError(t, src.Validate())
	}
}
