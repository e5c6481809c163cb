package runfolder_test

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
	"github.com/stretchr/testify/require"
)

// chromium returns the headless browser the report test renders with. It
// is installed by scripts/setup.sh: in CI (CI=true) its absence fails the
// test, elsewhere it skips it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	msg := "no chromium on PATH: scripts/setup.sh installs Debian's chromium, which renders report.html in this test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browse runs headless chromium on page with args and returns its output.
func browse(t *testing.T, browser, page string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// No sandbox: CI runs as root, where chromium refuses its sandbox.
	cmd := exec.CommandContext(ctx, browser, append([]string{"--headless", "--no-sandbox", "--disable-gpu",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}, append(args, "file://"+page)...)...)
	out, err := cmd.Output()
	require.NoError(t, err, "chromium %v", args)
	return out
}

// explained is a top-losses image: a square of colour c, its map hot in
// the top-left corner.
func explained(label, pred int, c color.NRGBA) finetune.Explanation {
	img := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	for y := range 32 {
		for x := range 32 {
			img.SetNRGBA(x, y, c)
		}
	}
	p := []float64{0.3, 0.7}
	if pred == 0 {
		p = []float64{0.7, 0.3}
	}
	return finetune.Explanation{ImageResult: finetune.ImageResult{Path: "x.png", Label: label, Predicted: pred, Probabilities: p, Loss: 1.2},
		Class: pred, View: img, Heat: finetune.Heatmap{W: 2, H: 2, Values: []float64{1, 0.2, 0.1, 0}}}
}

// reportRun records a run with a test set, the probe and top losses
// into a new folder and closes it.
func reportRun(t *testing.T, o runfolder.Options) *runfolder.Folder {
	f, err := runfolder.Open(filepath.Join(t.TempDir(), "run"), o)
	require.NoError(t, err)
	history := epochs(-1, 3)
	for i := range history {
		history[i].Seconds = 2.5
	}
	start := runStart(-1, 0)
	start.Run.Plan.Decisions = []finetune.Decision{{Key: "train.batchnorm", Value: "adapt", Reason: "the images are far from ImageNet's statistics"}}
	start.Run.Plan.Stages = []finetune.PlanStage{{Name: "head", Epochs: 3, Freeze: "all", LR: 1e-3}}
	record(t, f, start)
	for _, em := range history {
		record(t, f, epochEvent(em))
	}
	end := runEnd(-1, history)
	conf := finetune.NewConfusion([]string{"cat", "dog"})
	conf.Add([]int64{0, 0, 1, 1}, []int64{0, 1, 1, 1})
	end.Result.Test = &finetune.Evaluation{Accuracy: 0.75, Confusion: conf}
	probe := 0.6
	end.Result.ProbeAccuracy = &probe
	end.Result.Seconds = 9
	top := &finetune.TopLossReport{Split: "test", Classes: []string{"cat", "dog"}, Images: []finetune.Explanation{
		explained(0, 1, color.NRGBA{200, 30, 30, 255}), explained(1, 0, color.NRGBA{30, 30, 200, 255})}}
	record(t, f, finetune.Event{Kind: finetune.EventTopLosses, Fold: -1, TopLosses: top}, end)
	require.NoError(t, f.Close())
	return f
}

// TestReportInTensorboard: with output.tensorboard the plan's
// hyperparameters go to the events as text, the confusion matrices and
// top losses as images.
func TestReportInTensorboard(t *testing.T) {
	f := reportRun(t, runfolder.Options{Tensorboard: true})
	events, err := filepath.Glob(filepath.Join(f.Dir(), "events.out.tfevents.*"))
	require.NoError(t, err)
	require.Len(t, events, 1)
	b, err := os.ReadFile(events[0])
	require.NoError(t, err)
	for _, tag := range []string{"plan", "confusion/test", "confusion/validation", "top_losses/test", "train/loss"} {
		require.Contains(t, string(b), "\n"+string(rune(len(tag)))+tag, tag)
	}
	require.Contains(t, string(b), "| train.batchnorm | adapt | the images are far from ImageNet's statistics |")
	require.Equal(t, 3, strings.Count(string(b), "\x89PNG\r\n"), "three pictures")
}

// TestReportInBrowser records a run with a test set, the probe and top
// losses, renders its report.html in headless chromium and checks the
// screenshot (not blank) and the DOM (every section, every picture
// embedded).
func TestReportInBrowser(t *testing.T) {
	browser := chromium(t)
	f := reportRun(t, runfolder.Options{})
	page := filepath.Join(f.Dir(), "report.html")

	dom := string(browse(t, browser, page, "--dump-dom"))
	for _, id := range []string{"plan", "curves", "confusion", "per-class", "probe", "top-losses", "times"} {
		require.Regexp(t, `<section id="`+id+`">\s*<h2>`, dom, id)
	}
	require.Contains(t, dom, "the images are far from ImageNet's statistics")
	require.Regexp(t, `(?s)<h3>test: accuracy 75\.00%.*<h3>validation: accuracy 66\.67%`, dom)
	require.Contains(t, dom, "60.00%")
	imgs := regexp.MustCompile(`<img [^>]*src="data:image/png;base64,`).FindAllString(dom, -1)
	require.Len(t, imgs, 4, "curves, two confusion matrices, top losses")
	require.NotRegexp(t, `src="(?:https?:|file:|[^"d])`, dom, "every picture is embedded")

	shot := filepath.Join(t.TempDir(), "shot.png")
	browse(t, browser, page, "--screenshot="+shot, "--window-size=1200,2400")
	file, err := os.Open(shot)
	require.NoError(t, err)
	defer file.Close()
	img, err := png.Decode(file)
	require.NoError(t, err)
	b := img.Bounds()
	var ink, blue int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xe000 || g < 0xe000 || bl < 0xe000 {
				ink++
			}
			if bl > 0x8000 && r < 0x4000 && g < 0x8000 {
				blue++ // the confusion matrices' dark cells: pictures drew
			}
		}
	}
	require.Greater(t, ink, b.Dx()*b.Dy()/50, "the screenshot is mostly blank")
	require.Greater(t, blue, 500, "no confusion matrix in the screenshot")
	require.False(t, strings.Contains(dom, "No plan recorded"))
}
