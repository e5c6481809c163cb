package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/finetune-go/finetune/internal/snapshot"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/vision/models"
	"github.com/stretchr/testify/require"
)

// requirePNG fails unless path is a PNG at least w×h pixels.
func requirePNG(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	require.NoError(t, err, path)
	require.GreaterOrEqual(t, cfg.Width, w, path)
	require.GreaterOrEqual(t, cfg.Height, h, path)
}

// TestRunEvalPredictInspect trains a tiny model through the command, then
// evaluates, predicts with and inspects it, and checks inspect's figures
// against the model and the files the run wrote.
func TestRunEvalPredictInspect(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 8)
	flags := append(tinyFlags("data", "out", "head:1:all,ft:1:layer3"), "--output.tensorboard")

	r := cli(t, dir, append([]string{"run"}, flags...)...)
	requireExit(t, r, 0)
	requirePlain(t, r.stdout)
	require.Regexp(t, `(?m)^head 1/1  train loss \d\.\d{4} \(augmented\)  train acc \d\.\d{4} \(eval\)  val loss \d\.\d{4} acc \d\.\d{4}  gap [+-]\d\.\d{4}`, r.stdout)
	require.Regexp(t, `(?m)^ft 1/1  train loss`, r.stdout)
	require.Contains(t, r.stdout, "stage head: 1 epoch at most,")
	// --data.image_size 32 alone: images of 16 to 40 pixels are not
	// cropped at evaluation.
	require.Regexp(t, `data\.resize: auto → 32: the training images' median shorter side is \d+ pixels`, r.stdout)
	require.Contains(t, r.stdout, "data.mean 0.485,0.456,0.406 and data.std 0.229,0.224,0.225: ImageNet's: no pretrained weights")
	require.NotContains(t, r.stdout, " 1 epochs")
	require.Contains(t, r.stdout, "best epoch")
	require.Contains(t, r.stdout, filepath.Join("out", "best.safetensors"))
	out := filepath.Join(dir, "out")
	requirePNG(t, filepath.Join(out, "curves.png"), 800, 400)
	requirePNG(t, filepath.Join(out, "confusion.png"), 200, 200)
	events, err := filepath.Glob(filepath.Join(out, "events.out.tfevents.*"))
	require.NoError(t, err)
	require.Len(t, events, 1)

	// inspect: the same configuration, as JSON.
	r = cli(t, dir, append([]string{"inspect", "--format", "json"}, flags...)...)
	requireExit(t, r, 0)
	var got struct {
		Model finetune.Inspection
		Data  finetune.DataInfo
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	ins := got.Model
	m, err := finetune.NewModel("resnet18", finetune.Defaults().Model.Head, 2, 32)
	require.NoError(t, err)
	defer nn.Free(m)
	total, _ := nn.CountParameters(m)
	head, _ := nn.CountParameters(m.Head)
	require.Equal(t, total, ins.Total)
	require.Equal(t, head, ins.HeadParams)
	require.Len(t, ins.Stages, 2)
	for i, freeze := range []string{"all", "layer3"} {
		require.NoError(t, m.Freeze(freeze, "follow"))
		_, trainable := nn.CountParameters(m)
		require.Equal(t, trainable, ins.Stages[i].Trainable, freeze)
	}
	var shapes []string
	for _, g := range ins.Groups {
		shapes = append(shapes, g.Name+":"+dims(g.Shape))
	}
	require.Equal(t, []string{"stem:64x8x8", "layer1:64x8x8", "layer2:128x4x4", "layer3:256x2x2",
		"layer4:512x1x1", "pool:512", "head:2"}, shapes)
	for _, f := range []struct {
		name  string
		bytes int64
	}{{"best.safetensors", ins.FullBytes}, {"best-delta.safetensors", ins.DeltaBytes}} {
		info, err := os.Stat(filepath.Join(out, f.name))
		require.NoError(t, err)
		// The file holds the tensors inspect counts and the metadata.
		require.GreaterOrEqual(t, info.Size(), f.bytes, f.name)
		require.Less(t, info.Size()-f.bytes, int64(16<<10), f.name)
	}
	require.Equal(t, 16, got.Data.Train+got.Data.Val)
	require.Equal(t, (got.Data.Train+3)/4, got.Data.StepsPerEpoch)

	r = cli(t, dir, append([]string{"inspect", "--verbose"}, flags...)...)
	requireExit(t, r, 0)
	require.Contains(t, r.stdout, "total              11,177,538")
	require.Contains(t, r.stdout, "steps per epoch at batch 4")
	require.Contains(t, r.stdout, "steps over 2 epochs at most")
	one := cli(t, dir, append(append([]string{"inspect"}, flags...), "--stages", "head:1:all")...)
	requireExit(t, one, 0)
	require.Contains(t, one.stdout, "steps over 1 epoch at most")
	require.Regexp(t, `(?m)^layer4\s+5\s+5 frozen\s+5 frozen$`, r.stdout)
	require.Regexp(t, `(?m)^  backbone\.layer4\.1\.bn2\s+frozen\s+scale and shift train$`, r.stdout)
	// A checkpoint brings its configuration and classes.
	r = cli(t, dir, "inspect", "--checkpoint", "out/best-delta.safetensors", "--format", "json")
	requireExit(t, r, 0)
	var fromCheckpoint struct{ Model finetune.Inspection }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &fromCheckpoint))
	require.Equal(t, ins, fromCheckpoint.Model)
	r = cli(t, dir, "inspect", "--checkpoint", "out/best.safetensors")
	requireExit(t, r, 0)
	require.Contains(t, r.stdout, "checkpoint: out/best.safetensors (full): every tensor read")
	// A checkpoint cut in half is damaged, not fine.
	b, err := os.ReadFile(filepath.Join(out, "best.safetensors"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "half.safetensors"), b[:len(b)/2], 0o644))
	r = cli(t, dir, "inspect", "--checkpoint", "half.safetensors")
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, "--checkpoint: damaged: checkpoint: tensorfile: half.safetensors: tensor ")
	require.Contains(t, r.stderr, "the file is truncated")

	// eval, as a table and as JSON; a folder of other classes fails.
	r = cli(t, dir, "eval", "--checkpoint", "out/best.safetensors", "--data", "data")
	requireExit(t, r, 0)
	require.Regexp(t, `(?m)^accuracy\s+[01]\.\d{4}$`, r.stdout)
	require.Contains(t, r.stdout, "confusion (rows: true, columns: predicted)")
	r = cli(t, dir, "eval", "--checkpoint", "out/best-delta.safetensors", "--data", "data", "--format", "json", "--png", "c.png")
	requireExit(t, r, 0)
	var ev struct {
		Images    int64
		Accuracy  float64
		Confusion [][]int64
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &ev))
	require.Equal(t, int64(16), ev.Images)
	require.Equal(t, ev.Images, ev.Confusion[0][0]+ev.Confusion[0][1]+ev.Confusion[1][0]+ev.Confusion[1][1])
	requirePNG(t, filepath.Join(dir, "c.png"), 100, 100)
	writeImages(t, filepath.Join(dir, "other"), 1)
	require.NoError(t, os.Rename(filepath.Join(dir, "other", "red"), filepath.Join(dir, "other", "green")))
	r = cli(t, dir, "eval", "--checkpoint", "out/best.safetensors", "--data", "other")
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, `classes of other differ from those of the checkpoint: missing ["red"], extra ["green"]`)

	// predict: CSV and JSON parse, probabilities sum to 1.
	r = cli(t, dir, "predict", "--checkpoint", "out/best.safetensors", "--format", "csv", "data")
	requireExit(t, r, 0)
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"path", "class", "probability", "blue", "red"}, rows[0])
	require.Len(t, rows, 17)
	for _, row := range rows[1:] {
		p0, err0 := strconv.ParseFloat(row[3], 64)
		p1, err1 := strconv.ParseFloat(row[4], 64)
		require.NoError(t, err0)
		require.NoError(t, err1)
		require.InDelta(t, 1, p0+p1, 1e-6, row)
		require.Contains(t, []string{"blue", "red"}, row[1])
	}
	for _, tta := range [][]string{{"--tta=false"}, {"--tta"}, {"--tta", "false"}, {"--tta", "true"}} {
		args := append(append([]string{"predict", "--checkpoint", "out/best.safetensors", "--format", "json"}, tta...), "data/red/00.png", "data/blue")
		r = cli(t, dir, args...)
		requireExit(t, r, 0)
		var pj struct {
			Classes     []string
			TTA         bool
			Predictions []struct {
				Path          string
				Class         string
				Probability   float64
				Probabilities map[string]float64
			}
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &pj))
		require.Equal(t, tta[len(tta)-1] != "--tta=false" && tta[len(tta)-1] != "false", pj.TTA, tta)
		require.Len(t, pj.Predictions, 9)
		require.Equal(t, "data/red/00.png", pj.Predictions[0].Path)
		for _, p := range pj.Predictions {
			require.InDelta(t, 1, p.Probabilities["blue"]+p.Probabilities["red"], 1e-9)
			require.Equal(t, p.Probabilities[p.Class], p.Probability)
		}
	}
	r = cli(t, dir, "predict", "--checkpoint", "out/best.safetensors", "data/red/00.png")
	requireExit(t, r, 0)
	require.Regexp(t, `(?m)^path\s+class\s+probability\s+blue\s+red\ndata/red/00.png\s+(blue|red)\s+[01]\.\d{4}`, r.stdout)
}

// TestInspectLargeHead inspects the classic case, a ResNet50's 10×10×2048
// map at 300×300 pixels flattened into 1,024 units, without data or
// pretrained weights, and checks the warning's figure.
func TestInspectLargeHead(t *testing.T) {
	r := cli(t, t.TempDir(), "inspect", "--model.arch", "resnet50", "--data.image_size", "300",
		"--model.head.pooling", "flatten", "--model.head.hidden", "1024")
	requireExit(t, r, 0)
	head := finetune.HeadSize(finetune.HeadConfig{Pooling: "flatten", Hidden: []int{1024}}, 2048*10*10, 2)
	require.Equal(t, int64(209_718_274), head)
	require.Regexp(t, `(?m)^layer4\s+2048x10x10\s+14,964,736\s`, r.stdout)
	require.Contains(t, r.stdout, "warning: the head has 209,718,274 parameters (800.0 MiB as float32, 2.3 GiB with Adam's two moments)")
	require.Contains(t, r.stdout, "classes: 2 (assumed: set --classes or data.train)")
}

// TestRunJSON checks that --json prints only JSON lines: the engine's
// events, then a summary.
func TestRunJSON(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 6)
	r := cli(t, dir, append([]string{"run", "--json"}, tinyFlags("data", "out", "head:1:all")...)...)
	requireExit(t, r, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	kinds := map[string]int{}
	var last map[string]any
	for _, line := range lines {
		last = nil
		require.NoError(t, json.Unmarshal([]byte(line), &last), line)
		kinds[last["event"].(string)]++
	}
	require.Equal(t, 1, kinds["epoch"])
	require.Positive(t, kinds["step"])
	require.Equal(t, "summary", last["event"])
	require.Contains(t, last, "val")
	require.Contains(t, last, "checkpoints")
}

// TestRunBadImage checks that a damaged image fails the run (status 1)
// with a message naming it.
func TestRunBadImage(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 4)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "red", "broken.png"), []byte("not a png"), 0o644))
	r := cli(t, dir, append([]string{"run", "--data.on_bad_image", "error", "--data.val_split", "0.5"}, tinyFlags("data", "out", "head:1:all")...)...)
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, "broken.png")
	require.True(t, strings.HasPrefix(r.stderr, "finetune: "), r.stderr)
	require.NotContains(t, r.stderr, "goroutine")
}

// TestRunInterruptResume interrupts a run after its first epoch, checks
// the exit status and the resume hint, then resumes it to the end from
// another directory, into the checkpoint's folder.
func TestRunInterruptResume(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 8)
	cmd := exec.Command(binary, append([]string{"run"}, tinyFlags(filepath.Join(dir, "data"), "out", "head:1:all,ft:3:layer2")...)...)
	cmd.Dir, cmd.Env = dir, testEnv(t)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	var printed strings.Builder
	sc := bufio.NewScanner(stdout)
	sent := false
	for sc.Scan() {
		printed.WriteString(sc.Text() + "\n")
		if !sent && strings.HasPrefix(sc.Text(), "head 1/1 ") {
			require.NoError(t, cmd.Process.Signal(os.Interrupt))
			sent = true
		}
	}
	require.ErrorAs(t, cmd.Wait(), new(*exec.ExitError))
	r := result{stdout: printed.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	requireExit(t, r, 130)
	require.True(t, sent)
	last := filepath.Join("out", "last.safetensors")
	require.Contains(t, r.stderr, "training interrupted")
	require.Contains(t, r.stderr, "; resume with: finetune run --resume "+last+"\n")
	require.NotContains(t, r.stderr, "context canceled")
	require.NotContains(t, r.stdout, "ft 3/3")
	requirePNG(t, filepath.Join(dir, "out", "curves.png"), 800, 400)

	// The checkpoint carries the configuration: --resume alone continues.
	elsewhere := filepath.Join(dir, "elsewhere")
	require.NoError(t, os.Mkdir(elsewhere, 0o755))
	r = cli(t, elsewhere, "run", "--resume", filepath.Join("..", last))
	requireExit(t, r, 0)
	entries, err := os.ReadDir(elsewhere)
	require.NoError(t, err)
	require.Empty(t, entries)
	require.Contains(t, r.stdout, "ft 3/3")
	history, err := runfolder.ReadMetrics(filepath.Join(dir, "out", "metrics.jsonl"))
	require.NoError(t, err)
	require.Len(t, history, 4)
	for i, em := range history {
		require.Equal(t, i+1, em.GlobalEpoch)
		require.False(t, math.IsNaN(em.ValLoss))
	}
}

// TestRunFolders: each run gets a folder of its own under runs/, with
// runs/latest linking to the newest, and a run that fails before its
// first epoch (an unknown architecture, a mistyped path, a folder that
// holds a run) leaves every file as it was and claims no curves.
func TestRunFolders(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 8)
	flags := tinyFlags("data", "", "head:1:all")
	r := cli(t, dir, append([]string{"run"}, flags...)...)
	requireExit(t, r, 0)
	latest, err := os.Readlink(filepath.Join(dir, "runs", "latest"))
	require.NoError(t, err)
	run := filepath.Join("runs", latest)
	require.Contains(t, r.stdout, "finished in")
	require.Contains(t, r.stdout, filepath.Join(run, "curves.png"))
	before := snapshot.Take(t, filepath.Join(dir, "runs"))
	require.Contains(t, before, filepath.Join(latest, "metrics.jsonl"))

	for _, c := range []struct {
		flags []string
		err   string
	}{
		{[]string{"--model.arch", "resnet19"}, "resnet19"},
		{[]string{"--data.train", "dta"}, "dta"},
		{[]string{"--output.dir", filepath.Join("runs", "latest")}, "already holds a run"},
	} {
		r := cli(t, dir, append(append([]string{"run"}, flags...), c.flags...)...)
		require.NotEqual(t, 0, r.code, c.flags)
		require.Contains(t, r.stderr, c.err)
		require.NotContains(t, r.stdout, "so far")
		require.Equal(t, before, snapshot.Take(t, filepath.Join(dir, "runs")), c.flags)
	}
}

// TestDeltaWeightsElsewhere: a delta checkpoint finds the pretrained
// weights it was made from relative to its folder; once they have moved,
// eval and predict say what they tried, and --model.weights points at
// the new place (checked against the recorded hash).
func TestDeltaWeightsElsewhere(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 6)
	writeWeights := func(path string, seed uint64) {
		torch.ManualSeed(seed)
		m, err := models.New("resnet18", 1000)
		require.NoError(t, err)
		defer nn.Free(m)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, nn.WriteSafetensors(path, nn.StateDict(m), nil))
	}
	writeWeights(filepath.Join(dir, "base", "r18.safetensors"), 1)
	flags := append(tinyFlags("data", "out", "head:1:all"), "--model.weights", filepath.Join("base", "r18.safetensors"),
		"--output.checkpoint", "delta")
	requireExit(t, cli(t, dir, append([]string{"run"}, flags...)...), 0)
	delta := filepath.Join("out", "best-delta.safetensors")

	// Found relative to the checkpoint's folder, from another directory.
	elsewhere := filepath.Join(dir, "elsewhere")
	require.NoError(t, os.Mkdir(elsewhere, 0o755))
	requireExit(t, cli(t, elsewhere, "eval", "--checkpoint", filepath.Join("..", delta), "--data", filepath.Join("..", "data")), 0)

	require.NoError(t, os.Rename(filepath.Join(dir, "base"), filepath.Join(dir, "moved")))
	r := cli(t, dir, "eval", "--checkpoint", delta, "--data", "data")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "are not found: tried "+filepath.Join("base", "r18.safetensors")+" (missing)")
	require.Contains(t, r.stderr, "--model.weights")

	moved := filepath.Join("moved", "r18.safetensors")
	requireExit(t, cli(t, dir, "eval", "--checkpoint", delta, "--data", "data", "--model.weights", moved), 0)
	r = cli(t, dir, "predict", "--checkpoint", delta, "--model.weights", moved, "--format", "csv", filepath.Join("data", "red"))
	requireExit(t, r, 0)
	require.Contains(t, r.stdout, "00.png")

	other := filepath.Join("other", "r18.safetensors")
	writeWeights(filepath.Join(dir, other), 2)
	r = cli(t, dir, "eval", "--checkpoint", delta, "--data", "data", "--model.weights", other)
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, other+" (sha256 ")
	require.Contains(t, r.stderr, "are not those the checkpoint was made from")
}

// TestInspectDataDir: inspect --data DIR counts DIR's classes and steps,
// not those of the configured data.train.
func TestInspectDataDir(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 8)
	writeImages(t, filepath.Join(dir, "small"), 2)
	flags := tinyFlags("data", "out", "head:1:all")
	r := cli(t, dir, append([]string{"inspect"}, flags...)...)
	requireExit(t, r, 0)
	require.Contains(t, r.stdout, "classes: 2 (from data.train)")
	require.Contains(t, r.stdout, "data: 12 training images, 4 validation")
	r = cli(t, dir, append(append([]string{"inspect"}, flags...), "--data", "small")...)
	require.Contains(t, r.stdout, "classes: 2 (from --data small)")
	require.Contains(t, r.stdout, "data: 2 training images, 2 validation -> 1 step per epoch at batch 4, 1 step over 1 epoch at most")
	// Without pretrained weights there is no shift to measure.
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, "--data: model.weights: none")
}

// TestRunSkipBadImageOnce: under data.on_bad_image: skip a damaged image
// is warned about once per run, whatever the passes over the data, and
// under --quiet only in the summary; result.json lists it.
func TestRunSkipBadImageOnce(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		dir := t.TempDir()
		// Enough images for the probe's cross-validation, which makes
		// a pass of its own.
		writeImages(t, filepath.Join(dir, "data"), 24)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "red", "broken.png"), []byte("not a png"), 0o644))
		args := append([]string{"run", "--data.on_bad_image", "skip", "--data.val_split", "0.5", "--probe=true"}, tinyFlags("data", "out", "head:2:all")...)
		if quiet {
			args = append(args, "--quiet")
		}
		r := cli(t, dir, args...)
		requireExit(t, r, 0)
		if quiet {
			require.NotContains(t, r.stderr, "broken.png")
			require.Contains(t, r.stdout, " data/red/broken.png: ")
		} else {
			require.Equal(t, 1, strings.Count(r.stderr, "warning: skipping"), r.stderr)
		}
		b, err := os.ReadFile(filepath.Join(dir, "out", "result.json"))
		require.NoError(t, err)
		require.Contains(t, string(b), "broken.png")
		if quiet {
			continue
		}
		// eval does not inherit the run's skip; told to, it lists the file.
		r = cli(t, dir, "eval", "--checkpoint", "out/best.safetensors", "--data", "data")
		requireExit(t, r, 1)
		require.Contains(t, r.stderr, "broken.png")
		r = cli(t, dir, "eval", "--checkpoint", "out/best.safetensors", "--data", "data", "--data.on_bad_image", "skip", "--format", "json")
		requireExit(t, r, 0)
		var ev struct {
			Images  int64
			Skipped []string `json:"skipped_images"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &ev))
		require.Equal(t, int64(48), ev.Images)
		require.Len(t, ev.Skipped, 1)
		require.Contains(t, ev.Skipped[0], "broken.png")

		// predict: the error names the file by default; under skip the
		// folder goes on, the file listed in JSON and warned about in
		// one line beside the table.
		r = cli(t, dir, "predict", "--checkpoint", "out/best.safetensors", "data")
		requireExit(t, r, 1)
		require.Contains(t, r.stderr, "broken.png")
		r = cli(t, dir, "predict", "--checkpoint", "out/best.safetensors", "--data.on_bad_image", "skip", "--format", "json", "data")
		requireExit(t, r, 0)
		var pred struct {
			Predictions []struct{ Path string }
			Skipped     []string `json:"skipped_images"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &pred))
		require.Len(t, pred.Predictions, 48)
		require.Len(t, pred.Skipped, 1)
		require.Regexp(t, `^data/red/broken\.png: .+`, pred.Skipped[0])
		r = cli(t, dir, "predict", "--checkpoint", "out/best.safetensors", "--data.on_bad_image", "skip", "data")
		requireExit(t, r, 0)
		require.Equal(t, 48, strings.Count(r.stdout, "data/"), r.stdout)
		require.NotContains(t, r.stdout, "broken.png")
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
		require.Contains(t, r.stderr, "warning: skipped 1 image that could not be read: data/red/broken.png: ")
		r = cli(t, dir, "predict", "--checkpoint", "out/best.safetensors", "--data.on_bad_image", "ignore", "data")
		requireExit(t, r, 2)
	}
}
