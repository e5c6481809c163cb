package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The seed scenario's whole run (-only seedwhole) measures what a user
// waits for from the command to a trained model with its test accuracy:
// finetune with its defaults, given only what the data forces (the
// folders, the architecture and its weights, the image size, the
// loader's workers), against the PyTorch loop of bench/py/seed.py on the
// same folders, which also evaluates its final model on the test folder.
// The time compared is finetune's whole process against the PyTorch
// loop's head epoch alone (its training part, without validation), in
// the same round, so that "the whole default run takes less than one
// PyTorch epoch" reads off one ratio.

// wholeArgs is the finetune command of the whole run.
func wholeArgs(sc seedScenario, test string, threads int, dir string) []string {
	return []string{"run", "--json",
		"--data.train", sc.train, "--data.val", sc.val, "--data.test", test,
		"--data.workers", strconv.Itoa(threads), "--data.image_size", "224",
		"--model.arch", sc.arch, "--model.weights", sc.weights,
		"--device", "cpu", "--output.dir", dir,
	}
}

// wholeSplit reads finetune's event stream for the whole run: the start-up
// up to the first stage, the stages that ran, and the summary's
// accuracies.
type wholeSplit struct {
	start  procSample
	out    []seedPart
	stages []string
	best   string
	done   bool
}

func (w *wholeSplit) begin(s procSample) { w.start = s }

func (w *wholeSplit) line(l seedLine, s procSample) error {
	switch l.Event {
	case "error":
		return fmt.Errorf("finetune: %s", l.Message)
	case "stage":
		if len(w.stages) == 0 {
			w.out = append(w.out, between("", partStart, w.start, s))
		}
		if len(w.stages) == 0 || w.stages[len(w.stages)-1] != l.Stage {
			w.stages = append(w.stages, l.Stage)
		}
	case "summary":
		if l.Test == nil || l.Val == nil {
			return fmt.Errorf("finetune: summary without test or validation accuracy")
		}
		w.out = append(w.out, seedPart{Part: partVal, Accuracy: l.Val.Accuracy}, seedPart{Part: partTest, Accuracy: l.Test.Accuracy})
		if l.Best != nil {
			w.best = l.Best.Stage
		}
		w.done = true
	}
	return nil
}

func (w *wholeSplit) parts() []seedPart { return w.out }

// wholeRound is one round of the whole-run comparison: the PyTorch loop,
// then finetune's default run.
type wholeRound struct {
	PyTorch  *seedRun `json:"pytorch"`
	Finetune *seedRun `json:"finetune"`
	// Stages are the stages finetune's run started, in order, and Best
	// the stage of the epoch its final model comes from.
	Stages []string `json:"finetune_stages"`
	Best   string   `json:"finetune_best_stage"`
	// Ratio is finetune's whole process over PyTorch's head epoch
	// (training part).
	Ratio float64 `json:"ratio"`
}

// seedWholeResults is the record of -only seedwhole.
type seedWholeResults struct {
	Arch        string       `json:"arch"`
	TrainImages int          `json:"train_images"`
	ValImages   int          `json:"val_images"`
	TestImages  int          `json:"test_images"`
	Threads     int          `json:"threads"`
	Start       string       `json:"start"`
	End         string       `json:"end"`
	Data        string       `json:"data"`
	Command     []string     `json:"finetune_command"`
	Rounds      []wholeRound `json:"rounds"`
}

// seedWhole runs o.seedRuns rounds of the whole-run comparison.
func seedWhole(o options) (*seedWholeResults, error) {
	sc, runs, err := seedSetup(&o)
	if err != nil {
		return nil, err
	}
	testPerClass := sc.perClass / 2
	test, err := seedTest(o.mnist, o.seedDir, testPerClass)
	if err != nil {
		return nil, fmt.Errorf("test data: %w", err)
	}
	fmt.Printf("\n== seedwhole: %s at 224, finetune's whole default run against the PyTorch loop's head epoch, rounds: %d ==\n", sc.arch, runs)
	res := &seedWholeResults{Arch: sc.arch, TrainImages: sc.trainImages, ValImages: sc.valImages, TestImages: 2 * testPerClass,
		Threads: o.threads, Start: time.Now().Format(time.RFC3339), Data: filepath.Dir(sc.train),
		Command: append([]string{"finetune"}, wholeArgs(sc, test, o.threads, "DIR")...)}
	for i := range runs {
		var round wholeRound
		tmp, err := os.MkdirTemp("", "seedwhole-")
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(o.python, o.seedScript, "train", "--train", sc.train, "--val", sc.val, "--test", test,
			"--weights", sc.weights, "--arch", sc.arch, "--batch", strconv.Itoa(seedBatch),
			"--workers", strconv.Itoa(o.threads), "--threads", strconv.Itoa(o.threads))
		if round.PyTorch, err = runIn(tmp, cmd, o.threads, "pytorch", i+1, &pytorchSplit{threads: o.threads}); err != nil {
			return nil, err
		}
		fmt.Println(round.PyTorch)
		ws := &wholeSplit{}
		cmd = exec.Command(o.finetune, wholeArgs(sc, test, o.threads, filepath.Join(tmp, "run"))...)
		if round.Finetune, err = runIn(tmp, cmd, o.threads, "finetune", i+1, ws); err != nil {
			return nil, err
		}
		os.RemoveAll(tmp)
		if !ws.done {
			return nil, fmt.Errorf("finetune run %d: no summary", i+1)
		}
		fmt.Println(round.Finetune)
		head := round.PyTorch.part("head", partTrain)
		if head == nil || round.PyTorch.part("", partTest) == nil {
			return nil, fmt.Errorf("pytorch run %d: no head epoch or no test line", i+1)
		}
		round.Stages, round.Best = ws.stages, ws.best
		round.Ratio = round.Finetune.Wall / head.Seconds
		res.Rounds = append(res.Rounds, round)
	}
	res.End = time.Now().Format(time.RFC3339)
	return res, nil
}

// runIn runs cmd in dir (so that no ./finetune.yaml is read) with
// threads OpenMP threads.
func runIn(dir string, cmd *exec.Cmd, threads int, tool string, index int, sp splitter) (*seedRun, error) {
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("OMP_NUM_THREADS=%d", threads))
	return runSeedTool(cmd, tool, index, sp)
}

// accuracy is the run's accuracy in part, or NaN.
func (r *seedRun) accuracy(part string) float64 {
	if p := r.part("", part); p != nil {
		return p.Accuracy
	}
	return math.NaN()
}

func (res *seedWholeResults) print(w io.Writer) {
	fmt.Fprintf(w, "\n== seedwhole: %s, %d train / %d val / %d test images, %d threads ==\n",
		res.Arch, res.TrainImages, res.ValImages, res.TestImages, res.Threads)
	for _, r := range res.Rounds {
		fmt.Fprintf(w, "round %d: finetune whole run %.1f s / PyTorch head epoch %.1f s = %.3f; test accuracy finetune %.4f, PyTorch %.4f (stages %s, best %s)\n",
			r.Finetune.Index, r.Finetune.Wall, r.PyTorch.part("head", partTrain).Seconds, r.Ratio,
			r.Finetune.accuracy(partTest), r.PyTorch.accuracy(partTest), strings.Join(r.Stages, ","), r.Best)
	}
}

// markdown writes the results as a Markdown table.
func (res *seedWholeResults) markdown(w io.Writer) {
	fmt.Fprintf(w, "# Seed scenario: the whole default run\n\n%s at 224×224, Fashion-MNIST T-shirt/shirt as %d×%d JPEGs: %d training, "+
		"%d validation and %d test images (%s); %d intra-op threads and %d loader workers on both sides. From %s to %s.\n\n",
		res.Arch, seedSide, seedSide, res.TrainImages, res.ValImages, res.TestImages, res.Data, res.Threads, res.Threads, res.Start, res.End)
	fmt.Fprintf(w, "finetune runs as `%s` (its defaults otherwise); PyTorch runs `bench/py/seed.py train --test DIR`: "+
		"a head epoch and a layer4 epoch, each validated, then the test folder.\n\n", strings.Join(res.Command, " "))
	fmt.Fprint(w, "| round | finetune whole run | PyTorch head epoch (training) | ratio | PyTorch whole run | finetune test acc. | PyTorch test acc. | "+
		"finetune stages (best) | finetune user / system CPU |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n")
	for _, r := range res.Rounds {
		fmt.Fprintf(w, "| %d | %.1f s | %.1f s | **%.3f** | %.1f s | %.4f | %.4f | %s (%s) | %.0f s / %.1f s |\n", r.Finetune.Index,
			r.Finetune.Wall, r.PyTorch.part("head", partTrain).Seconds, r.Ratio, r.PyTorch.Wall,
			r.Finetune.accuracy(partTest), r.PyTorch.accuracy(partTest), strings.Join(r.Stages, ", "), r.Best,
			r.Finetune.User, r.Finetune.Sys)
	}
	fmt.Fprint(w, "\nratio: finetune's whole process (start to exit, its test evaluation and files included) over the PyTorch loop's head "+
		"epoch, training part only (the loop's own time.perf_counter), run one after the other.\n")
}
