package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/finetune"
)

// TestRunEveryFamily trains one network of every family of the zoo from
// scratch for an epoch per stage on a tiny folder, at the smallest size
// each takes, and reads what the run wrote: the engine's paths (freeze
// points named by the family, the default's layer2 mapped to it, the
// BatchNorm policy or its absence, cached features, checkpoints) work
// beyond ResNets. A delta checkpoint of one of them then evaluates and
// predicts.
func TestRunEveryFamily(t *testing.T) {
	for _, c := range []struct {
		arch   string
		size   string
		stages string
		// freeze is the plan's freeze point of the last stage.
		freeze    string
		batchnorm string
	}{
		{"mobilenet_v3_small", "32", "head:1:all,ft:1:layer2", "stage3", "train"},
		{"efficientnet_b0", "32", "ft:1:stage6", "stage6", "train"},
		{"regnet_y_400mf", "32", "head:1:all,ft:1:layer2", "stage2", "train"},
		{"convnext_tiny", "32", "head:1:all,ft:1:layer2", "stage2", "none"},
		{"swin_t", "32", "ft:1:stage3", "stage3", "none"},
		// A ViT takes 224×224 images only: one stage, the last block
		// training.
		{"vit_b_16", "224", "ft:1:block11", "block11", "none"},
	} {
		t.Run(c.arch, func(t *testing.T) {
			dir := t.TempDir()
			writeImages(t, filepath.Join(dir, "data"), 4)
			flags := []string{"--data.train", "data", "--model.arch", c.arch, "--model.weights", "none",
				"--data.image_size", c.size, "--data.batch_size", "4", "--data.workers", "1", "--device", "cpu",
				"--output.dir", "out", "--stages", c.stages, "--probe=false", "--search", "off", "--model.head.init", "random", "--augment.enabled=false"}
			r := cli(t, dir, append([]string{"run"}, flags...)...)
			requireExit(t, r, 0)
			var res struct {
				BatchNorm string `json:"batchnorm"`
				Val       *struct{ Accuracy float64 }
			}
			readJSON(t, filepath.Join(dir, "out", "result.json"), &res)
			require.Equal(t, c.batchnorm, res.BatchNorm)
			require.NotNil(t, res.Val)
			var plan struct{ Stages []struct{ Freeze string } }
			readJSON(t, filepath.Join(dir, "out", "plan.json"), &plan)
			require.Equal(t, c.freeze, plan.Stages[len(plan.Stages)-1].Freeze)
			if !strings.HasSuffix(c.stages, ":layer2") {
				return
			}
			require.Contains(t, r.stdout, "freeze: "+c.freeze+": the default's layer2 leaves a ResNet's last two stages training")
			if c.arch == "convnext_tiny" {
				requireFamilyInspection(t, dir, flags)
			}
			if c.arch != "mobilenet_v3_small" {
				return
			}
			r = cli(t, dir, "eval", "--checkpoint", "out/best-delta.safetensors", "--data", "data", "--format", "json")
			requireExit(t, r, 0)
			var ev struct{ Images int64 }
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &ev))
			require.Equal(t, int64(8), ev.Images)
			r = cli(t, dir, "predict", "--checkpoint", "out/best.safetensors", "--format", "csv", "data/red/00.png")
			requireExit(t, r, 0)
			require.Contains(t, r.stdout, "00.png")
		})
	}
}

// TestFamilyUsageErrors: what a network of a family cannot do is refused,
// naming the key and the network: as a usage error (2) where the
// configuration alone shows it, before training (1) where the network's
// stages do.
func TestFamilyUsageErrors(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 2)
	base := []string{"run", "--data.train", "data", "--model.weights", "none", "--data.image_size", "32", "--device", "cpu", "--output.dir", "out"}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--model.arch", "convnext_tiny", "--train.batchnorm", "adapt"}, 2,
			"train.batchnorm: adapt, but convnext_tiny has no BatchNorm layers"},
		{[]string{"--model.arch", "convnext_tny"}, 2, `(did you mean "convnext_tiny"?)`},
		{[]string{"--model.arch", "efficientnet_b0", "--stages", "ft:1:layer3"}, 1,
			`stages[0].freeze: freeze: "layer3" is not a freeze point of efficientnet_b0: one of none, stem, stage1,`},
		{[]string{"--model.arch", "vit_b_16"}, 1, "data.image_size: vit_b_16 takes 224×224 images"},
	} {
		r := cli(t, dir, append(base, c.args...)...)
		requireExit(t, r, c.code)
		require.Contains(t, r.stderr, c.want)
	}
	r := cli(t, dir, "run", "--help")
	require.Contains(t, r.stdout, "convnext_tiny")
}

// requireFamilyInspection checks inspect's sizes of convnext_tiny: the
// groups are its stages, the head sees its 768 pooled features, the
// last stage freezes at the default's mapped point, and the text says
// the network has no BatchNorm.
func requireFamilyInspection(t *testing.T, dir string, flags []string) {
	r := cli(t, dir, append([]string{"inspect", "--format", "json"}, flags...)...)
	requireExit(t, r, 0)
	var got struct{ Model finetune.Inspection }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	in := got.Model
	var shapes []string
	for _, g := range in.Groups {
		shapes = append(shapes, g.Name+":"+dims(g.Shape))
	}
	require.Equal(t, []string{"stem:96x8x8", "stage1:96x8x8", "stage2:192x4x4", "stage3:384x2x2", "stage4:768x1x1", "pool:768", "head:2"}, shapes)
	require.Equal(t, int64(768), in.HeadInputs)
	require.Equal(t, int64(768*2+2), in.HeadParams)
	require.Equal(t, "stage2", in.Stages[1].Freeze)
	require.Equal(t, in.Groups[3].Params+in.Groups[4].Params+in.Groups[5].Params+in.HeadParams, in.Stages[1].Trainable)
	r = cli(t, dir, append([]string{"inspect"}, flags...)...)
	requireExit(t, r, 0)
	require.Contains(t, r.stdout, "no BatchNorm layers: convnext_tiny normalises with LayerNorm")
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}
