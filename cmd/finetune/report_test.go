package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// predictionRows reads a predictions.csv and returns, per split, the
// accuracy and mean loss its rows give.
func predictionRows(t *testing.T, path string, classes []string) map[string][2]float64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	header := []string{"path", "split", "true", "predicted"}
	for _, c := range classes {
		header = append(header, "prob_"+c)
	}
	require.Equal(t, append(header, "loss"), rows[0])
	type sums struct{ n, hit, loss float64 }
	by := map[string]*sums{}
	for _, row := range rows[1:] {
		s := by[row[1]]
		if s == nil {
			s = &sums{}
			by[row[1]] = s
		}
		s.n++
		if row[2] == row[3] {
			s.hit++
		}
		var total float64
		for _, v := range row[4 : 4+len(classes)] {
			p, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			total += p
		}
		require.InDelta(t, 1, total, 1e-9, row)
		loss, err := strconv.ParseFloat(row[len(row)-1], 64)
		require.NoError(t, err)
		s.loss += loss
	}
	out := map[string][2]float64{}
	for split, s := range by {
		out[split] = [2]float64{s.hit / s.n, s.loss / s.n}
	}
	return out
}

// TestReports trains with a test set and checks the reports a person
// reads: predictions.csv against result.json and eval, the test figures
// first, top_losses.png and predict --explain's overlays.
func TestReports(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 8)
	writeImages(t, filepath.Join(dir, "test"), 3)
	flags := append(tinyFlags("data", "out", "head:1:all"), "--data.test", "test")
	r := cli(t, dir, append([]string{"run"}, flags...)...)
	requireExit(t, r, 0)
	out := filepath.Join(dir, "out")
	classes := []string{"blue", "red"}

	var result struct {
		Test, Val struct{ Accuracy, Loss float64 }
	}
	b, err := os.ReadFile(filepath.Join(out, "result.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &result))
	got := predictionRows(t, filepath.Join(out, "predictions.csv"), classes)
	require.Equal(t, result.Test.Accuracy, got["test"][0])
	require.InDelta(t, result.Test.Loss, got["test"][1], 1e-6)
	require.Equal(t, result.Val.Accuracy, got["validation"][0])
	require.InDelta(t, result.Val.Loss, got["validation"][1], 1e-6)

	// The test set comes first: confusion.png is its matrix, the
	// terminal's table its classes.
	requirePNG(t, filepath.Join(out, "confusion.png"), 200, 200)
	requirePNG(t, filepath.Join(out, "confusion_val.png"), 200, 200)
	require.Regexp(t, `(?s)test accuracy.*val accuracy.*test per class:.*validation per class:`, r.stdout)
	requirePNG(t, filepath.Join(out, "top_losses.png"), 600, 200)

	// eval writes the same rows for its folder, which give its accuracy.
	r = cli(t, dir, "eval", "--checkpoint", "out/best.safetensors", "--data", "data", "--format", "json", "--predictions", "p.csv")
	requireExit(t, r, 0)
	var ev struct{ Accuracy, Loss float64 }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &ev))
	got = predictionRows(t, filepath.Join(dir, "p.csv"), classes)
	require.Equal(t, ev.Accuracy, got["data"][0])
	require.InDelta(t, ev.Loss, got["data"][1], 1e-6)

	r = cli(t, dir, "predict", "--checkpoint", "out/best.safetensors", "--explain", "why", "data/red/00.png", "test/red/00.png")
	requireExit(t, r, 0)
	requirePNG(t, filepath.Join(dir, "why", "00.gradcam.png"), 32, 32)
	requirePNG(t, filepath.Join(dir, "why", "00-2.gradcam.png"), 32, 32)
}

// TestLRFind runs the range test through the command and checks what it
// prints and draws.
func TestLRFind(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 6)
	r := cli(t, dir, append([]string{"lr-find", "--steps", "16", "--png", "range.png"}, tinyFlags("data", "out", "head:1:all")...)...)
	requireExit(t, r, 0)
	require.Regexp(t, `(?m)^lr-find: \d+ steps from 1e-07 \(stage head, adamw\)`, r.stdout)
	m := regexp.MustCompile(`(?m)^suggested learning rate: (\S+) .*--train.lr (\S+)$`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	lr, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	require.True(t, lr >= 1e-7 && lr <= 10, lr)
	requirePNG(t, filepath.Join(dir, "range.png"), 900, 520)
	require.NoDirExists(t, filepath.Join(dir, "out"), "lr-find writes no run folder")

	r = cli(t, dir, append([]string{"lr-find", "--stage", "3"}, tinyFlags("data", "out", "head:1:all")...)...)
	requireExit(t, r, 2)
	require.Contains(t, r.stderr, "--stage 3: the recipe has 1 stage")
}

// TestInspectAugment draws the augmentation preview through inspect.
func TestInspectAugment(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, filepath.Join(dir, "data"), 4)
	r := cli(t, dir, append([]string{"inspect", "--augment", "5", "--augment-png", "aug.png"}, tinyFlags("data", "out", "head:1:all")...)...)
	requireExit(t, r, 0)
	require.Contains(t, r.stdout, "augmentation: 5 training draws beside their evaluation views in aug.png")
	// Four images in rows of 96-pixel tiles: the first with two draws.
	requirePNG(t, filepath.Join(dir, "aug.png"), 10+3*106+10, 50+4*126)
	r = cli(t, dir, "inspect", "--augment", "3")
	requireExit(t, r, 2)
	require.Contains(t, r.stderr, "--augment needs data.train")
}
