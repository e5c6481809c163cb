package main

import (
	"encoding/json"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/finetune-go/finetune/internal/fashionmnist"
)

func TestParseStat(t *testing.T) {
	buf, err := os.ReadFile("/proc/self/stat")
	require.NoError(t, err)
	self, err := parseStat(string(buf))
	require.NoError(t, err)
	require.Positive(t, self.minflt)

	tests := []struct {
		name, line string
		want       procSample
		err        bool
	}{
		{"plain", "42 (python3) S 1 42 42 0 -1 4194560 1000 20 3 0 250 30 7 2 20 0 1 0 5 6 7",
			procSample{minflt: 1020, user: 2.57, sys: 0.32}, false},
		{"name with spaces and parentheses", "42 (a) b (c)) R 1 42 42 0 -1 0 5 6 0 0 100 200 0 0 20 0",
			procSample{minflt: 11, user: 1, sys: 2}, false},
		{"truncated", "42 (x) R 1 42 42 0 -1 0 5 6", procSample{}, true},
		{"no name", "42 x R", procSample{}, true},
		{"not a number", "42 (x) R 1 42 42 0 -1 0 five 6 0 0 100 200 0 0 20 0", procSample{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(tc.line)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want.minflt, got.minflt)
			require.InDelta(t, tc.want.user, got.user, 1e-9)
			require.InDelta(t, tc.want.sys, got.sys, 1e-9)
		})
	}
}

// at is a sample sec seconds after t0 with cpu seconds of user time, a
// tenth of that of system time and 100 faults a second.
func at(t0 time.Time, sec float64) procSample {
	return procSample{at: t0.Add(time.Duration(sec * float64(time.Second))), user: sec, sys: sec / 10, minflt: int64(100 * sec)}
}

func feed(t *testing.T, sp splitter, t0 time.Time, lines []string, secs []float64) error {
	t.Helper()
	for i, l := range lines {
		var sl seedLine
		require.NoError(t, json.Unmarshal([]byte(l), &sl))
		if err := sp.line(sl, at(t0, secs[i])); err != nil {
			return err
		}
	}
	return nil
}

func TestFinetuneSplit(t *testing.T) {
	t0 := time.Now()
	lines := []string{
		`{"event":"info","fold":-1,"message":"data: 64 training images"}`,
		`{"event":"stage","fold":-1,"stage":"head","epochs":1}`,
		`{"event":"step","fold":-1,"stage":"head","epoch":1,"step":1,"steps":2}`,
		`{"event":"step","fold":-1,"stage":"head","epoch":1,"step":2,"steps":2}`,
		`{"event":"epoch","fold":-1,"stage":"head","epoch":1,"metrics":{"seconds":2.25,"val_accuracy":0.75}}`,
		`{"event":"stage","fold":-1,"stage":"layer4","epochs":1}`,
		`{"event":"step","fold":-1,"stage":"layer4","epoch":1,"step":2,"steps":2}`,
		`{"event":"epoch","fold":-1,"stage":"layer4","epoch":1,"metrics":{"seconds":3.75,"val_accuracy":0.5}}`,
		`{"event":"summary","best_epoch":1}`,
	}
	secs := []float64{0.5, 1, 2, 3.5, 4, 5, 9, 10, 11}
	sp := &finetuneSplit{trainSteps: 2, valSteps: 1}
	sp.begin(at(t0, 0))
	require.NoError(t, feed(t, sp, t0, lines, secs))
	parts := sp.parts()
	require.Len(t, parts, 5)
	want := []struct {
		stage, part   string
		seconds, wall float64
		steps         int
		acc           float64
	}{
		{"", partStart, 1, 1, 0, 0},
		{"head", partTrain, 2.25, 2.5, 2, 0},
		{"head", partVal, 0.5, 0.5, 1, 0.75},
		{"layer4", partTrain, 3.75, 4, 2, 0},
		{"layer4", partVal, 1, 1, 1, 0.5},
	}
	for i, w := range want {
		p := parts[i]
		require.Equal(t, w.stage, p.Stage, i)
		require.Equal(t, w.part, p.Part, i)
		require.InDelta(t, w.seconds, p.Seconds, 1e-6, i)
		require.InDelta(t, w.wall, p.Wall, 1e-6, i)
		require.InDelta(t, w.wall, p.User, 1e-6, i)
		require.InDelta(t, w.wall/10, p.Sys, 1e-6, i)
		require.Equal(t, int64(100*w.wall), p.MinFlt, i)
		require.Equal(t, w.steps, p.Steps, i)
		require.InDelta(t, w.acc, p.Accuracy, 1e-9, i)
	}

	t.Run("error event", func(t *testing.T) {
		sp := &finetuneSplit{start: at(t0, 0)}
		err := feed(t, sp, t0, []string{`{"event":"error","message":"model.weights: no such file"}`}, []float64{1})
		require.ErrorContains(t, err, "model.weights: no such file")
	})
	t.Run("epoch before its last step", func(t *testing.T) {
		sp := &finetuneSplit{start: at(t0, 0)}
		err := feed(t, sp, t0, lines[1:3:3], []float64{1, 2})
		require.NoError(t, err)
		require.Error(t, feed(t, sp, t0, lines[4:5], []float64{3}))
	})
}

func TestPytorchSplit(t *testing.T) {
	t0 := time.Now()
	lines := []string{
		`{"event":"ready","threads":2,"version":"1.13.0a0"}`,
		`{"event":"train","stage":"head","seconds":2.9,"steps":2,"loss":0.7,"accuracy":0.5}`,
		`{"event":"val","stage":"head","seconds":0.4,"steps":1,"loss":0.7,"accuracy":0.625}`,
	}
	sp := &pytorchSplit{threads: 2}
	sp.begin(at(t0, 0))
	require.NoError(t, feed(t, sp, t0, lines, []float64{1.5, 4.5, 5}))
	parts := sp.parts()
	require.Len(t, parts, 3)
	require.Equal(t, seedPart{Part: partStart, Seconds: 1.5, Wall: 1.5, User: 1.5, Sys: 0.15, MinFlt: 150}, roundPart(parts[0]))
	require.Equal(t, seedPart{Stage: "head", Part: partTrain, Seconds: 2.9, Wall: 3, User: 3, Sys: 0.3, MinFlt: 300,
		Steps: 2, Accuracy: 0.5}, roundPart(parts[1]))
	require.Equal(t, seedPart{Stage: "head", Part: partVal, Seconds: 0.4, Wall: 0.5, User: 0.5, Sys: 0.05, MinFlt: 50,
		Steps: 1, Accuracy: 0.625}, roundPart(parts[2]))

	sp = &pytorchSplit{threads: 4, last: at(t0, 0)}
	require.ErrorContains(t, feed(t, sp, t0, lines[:1], []float64{1}), "2 threads, want 4")
	sp = &pytorchSplit{threads: 2, last: at(t0, 0)}
	require.Error(t, feed(t, sp, t0, []string{`{"event":"epoch"}`}, []float64{1}))
}

// roundPart rounds a part's times to microseconds, which the samples'
// time.Duration arithmetic leaves a little off.
func roundPart(p seedPart) seedPart {
	r := func(x float64) float64 { return float64(int64(x*1e6+0.5)) / 1e6 }
	p.Seconds, p.Wall, p.User, p.Sys = r(p.Seconds), r(p.Wall), r(p.User), r(p.Sys)
	return p
}

// fakeRun is a run whose every part takes the same time, scaled by f.
func fakeRun(tool string, index int, f float64) *seedRun {
	r := &seedRun{Tool: tool, Index: index, Wall: 100 * f, User: 150 * f, Sys: 15 * f, MinFlt: int64(1000 * f)}
	r.Parts = append(r.Parts, seedPart{Part: partStart, Seconds: f, Wall: f, User: f, MinFlt: 100})
	for _, st := range seedStages {
		for _, pt := range []string{partTrain, partVal} {
			r.Parts = append(r.Parts, seedPart{Stage: st, Part: pt, Seconds: 20 * f, Wall: 20 * f, User: 30 * f,
				Sys: 3 * f, MinFlt: 200, Steps: 10})
		}
	}
	return r
}

func TestSeedSummarise(t *testing.T) {
	sr := &seedResults{Runs: []*seedRun{
		fakeRun("finetune", 1, 1), fakeRun("pytorch", 1, 2),
		fakeRun("finetune", 2, 3), fakeRun("pytorch", 2, 2),
		fakeRun("finetune", 3, 1), fakeRun("pytorch", 3, 4),
	}}
	require.NoError(t, checkParts(sr.Runs[0]))
	sr.summarise()
	require.Len(t, sr.Times, len(seedKeys))
	head := sr.Times[1]
	require.Equal(t, "head", head.Stage)
	require.Equal(t, partTrain, head.Part)
	require.Equal(t, []float64{20, 60, 20}, head.Finetune)
	require.Equal(t, []float64{40, 40, 80}, head.PyTorch)
	require.InDelta(t, 0.5, head.Ratio, 1e-9)
	require.Equal(t, []float64{0.5, 1.5, 0.25}, head.PairRatios)
	require.InDelta(t, 0.5, head.PairRatio, 1e-9)

	// Outside the epochs: the process less its parts.
	rest := sr.Times[5]
	require.Equal(t, partRest, rest.Part)
	require.Equal(t, []float64{19, 57, 19}, rest.Finetune)

	var proc *seedCost
	for i, c := range sr.Costs {
		if c.Part == partProcess && c.Tool == "pytorch" {
			proc = &sr.Costs[i]
		}
	}
	require.NotNil(t, proc)
	require.InDelta(t, 200, proc.Wall, 1e-9)
	require.InDelta(t, 30.0/330, proc.SysShare, 1e-9)
	require.Equal(t, 40, proc.Steps)
	require.InDelta(t, 2000.0/40, proc.FaultsPerStep, 1e-9)

	var b strings.Builder
	sr.print(&b)
	sr.markdown(&b)
	require.Contains(t, b.String(), "| head epoch, training | 20.00 s | 40.00 s | **0.500** | 0.500 | 0.500, 1.500, 0.250 |")

	bad := fakeRun("pytorch", 1, 1)
	bad.Parts = bad.Parts[:3]
	require.ErrorContains(t, checkParts(bad), "no train part of stage layer4")
}

func TestSeedData(t *testing.T) {
	dir := t.TempDir()
	train, val, err := seedData(fashionmnist.DefaultDir, dir, 5)
	require.NoError(t, err)
	for _, c := range seedClasses {
		for split, want := range map[string]int{train: 4, val: 1} {
			files, err := filepath.Glob(filepath.Join(split, fashionmnist.Classes[c], "*.jpg"))
			require.NoError(t, err)
			require.Len(t, files, want, "%s/%s", split, fashionmnist.Classes[c])
			f, err := os.Open(files[0])
			require.NoError(t, err)
			img, err := jpeg.Decode(f)
			f.Close()
			require.NoError(t, err)
			require.Equal(t, seedSide, img.Bounds().Dx())
			require.Equal(t, seedSide, img.Bounds().Dy())
		}
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the finished folder remains")

	// A second call finds the folder and writes nothing.
	stamp := time.Unix(1, 0)
	require.NoError(t, os.Chtimes(train, stamp, stamp))
	train2, val2, err := seedData(fashionmnist.DefaultDir, dir, 5)
	require.NoError(t, err)
	require.Equal(t, [2]string{train, val}, [2]string{train2, val2})
	info, err := os.Stat(train)
	require.NoError(t, err)
	require.True(t, info.ModTime().Equal(stamp))

	_, _, err = seedData(fashionmnist.DefaultDir, t.TempDir(), 7000)
	require.ErrorContains(t, err, "has 6000 images of tshirt, want 7000")
}

func TestSeedImageDeterministic(t *testing.T) {
	grey := make([]byte, fashionmnist.Side*fashionmnist.Side)
	for i := range grey {
		grey[i] = uint8(i)
	}
	a, b, c := seedImage(grey, 3), seedImage(grey, 3), seedImage(grey, 4)
	require.Equal(t, a.Pix, b.Pix)
	require.NotEqual(t, a.Pix, c.Pix)
}

func TestWholeSplit(t *testing.T) {
	t0 := time.Now()
	lines := []string{
		`{"event":"info","fold":-1,"message":"measuring the shift"}`,
		`{"event":"stage","fold":-1,"stage":"head","epochs":5}`,
		`{"event":"stage","fold":-1,"stage":"head","epochs":5}`,
		`{"event":"stage","fold":-1,"stage":"finetune","epochs":15}`,
		`{"event":"summary","best":{"stage":"finetune"},"val":{"accuracy":0.8},"test":{"accuracy":0.75}}`,
	}
	ws := &wholeSplit{}
	ws.begin(at(t0, 0))
	require.NoError(t, feed(t, ws, t0, lines, []float64{1, 2, 3, 4, 5}))
	require.True(t, ws.done)
	require.Equal(t, []string{"head", "finetune"}, ws.stages)
	require.Equal(t, "finetune", ws.best)
	r := &seedRun{Parts: ws.parts()}
	require.InDelta(t, 2, r.part("", partStart).Seconds, 1e-6)
	require.Equal(t, 0.75, r.accuracy(partTest))
	require.Equal(t, 0.8, r.accuracy(partVal))

	ws = &wholeSplit{}
	ws.begin(at(t0, 0))
	require.ErrorContains(t, feed(t, ws, t0, []string{`{"event":"summary","val":{"accuracy":0.8}}`}, []float64{1}),
		"without test")
	require.ErrorContains(t, feed(t, &wholeSplit{}, t0, []string{`{"event":"error","message":"boom"}`}, []float64{1}), "boom")
}
