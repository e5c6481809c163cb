package main

import (
	"fmt"
	"io"
	"strings"
)

// seedResults is the seed scenario's record: every run, and the
// comparisons drawn from them.
type seedResults struct {
	Arch        string   `json:"arch"`
	PerClass    int      `json:"per_class"`
	TrainImages int      `json:"train_images"`
	ValImages   int      `json:"val_images"`
	Batch       int      `json:"batch"`
	Threads     int      `json:"threads"`
	Start       string   `json:"start"`
	End         string   `json:"end"`
	Data        string   `json:"data"`
	Weights     string   `json:"weights"`
	Command     []string `json:"finetune_command"`
	// Runs are in the order they ran; the runs with the same index of
	// the two tools form a pair.
	Runs  []*seedRun `json:"runs"`
	Times []seedTime `json:"times"`
	Costs []seedCost `json:"costs"`
}

// seedTime compares a part's seconds: finetune's against PyTorch's.
type seedTime struct {
	Stage       string    `json:"stage,omitempty"`
	Part        string    `json:"part"`
	Finetune    []float64 `json:"finetune_s"`
	PyTorch     []float64 `json:"pytorch_s"`
	FinetuneMed float64   `json:"finetune_median_s"`
	PyTorchMed  float64   `json:"pytorch_median_s"`
	Ratio       float64   `json:"ratio"` // finetune median / PyTorch median
	PairRatios  []float64 `json:"pair_ratios"`
	PairRatio   float64   `json:"pair_ratio"` // median of PairRatios
}

// seedCost is what one tool spent in a part: medians over its runs.
type seedCost struct {
	Stage string  `json:"stage,omitempty"`
	Part  string  `json:"part"`
	Tool  string  `json:"tool"`
	Wall  float64 `json:"wall_s"`
	User  float64 `json:"user_s"`
	Sys   float64 `json:"sys_s"`
	// SysShare is system time / (user + system time).
	SysShare      float64 `json:"sys_share"`
	MinFlt        float64 `json:"minor_faults"`
	Steps         int     `json:"steps"`
	FaultsPerStep float64 `json:"minor_faults_per_step,omitempty"`
}

// Pseudo-parts: the whole process, and what it spent outside the parts
// (between the epochs and after the last: finetune writes its
// checkpoints, evaluates the best model and draws its plots).
const (
	partProcess = "whole process"
	partRest    = "outside the epochs"
)

// seedKeys are the parts the results compare, in order.
var seedKeys = [][2]string{{"", partStart}, {"head", partTrain}, {"head", partVal}, {"layer4", partTrain},
	{"layer4", partVal}, {"", partRest}, {"", partProcess}}

// view returns the run's part stage/part, a pseudo-part, or nil.
func (r *seedRun) view(stage, part string) *seedPart {
	if part != partProcess && part != partRest {
		return r.part(stage, part)
	}
	p := &seedPart{Part: part, Seconds: r.Wall, Wall: r.Wall, User: r.User, Sys: r.Sys, MinFlt: r.MinFlt}
	for _, q := range r.Parts {
		if part == partProcess {
			p.Steps += q.Steps
			continue
		}
		p.Wall -= q.Wall
		p.User -= q.User
		p.Sys -= q.Sys
		p.MinFlt -= q.MinFlt
	}
	if part == partRest {
		p.Seconds = p.Wall
	}
	return p
}

// summarise fills in Times and Costs from Runs.
func (sr *seedResults) summarise() {
	byTool := map[string][]*seedRun{}
	for _, r := range sr.Runs {
		byTool[r.Tool] = append(byTool[r.Tool], r)
	}
	sr.Times, sr.Costs = nil, nil
	for _, k := range seedKeys {
		t := seedTime{Stage: k[0], Part: k[1]}
		for _, tool := range []string{"finetune", "pytorch"} {
			var wall, user, sys, share, faults []float64
			var steps int
			for _, r := range byTool[tool] {
				p := r.view(k[0], k[1])
				if p == nil {
					continue
				}
				if tool == "finetune" {
					t.Finetune = append(t.Finetune, p.Seconds)
				} else {
					t.PyTorch = append(t.PyTorch, p.Seconds)
				}
				wall, user, sys = append(wall, p.Wall), append(user, p.User), append(sys, p.Sys)
				if cpu := p.User + p.Sys; cpu > 0 {
					share = append(share, p.Sys/cpu)
				}
				faults = append(faults, float64(p.MinFlt))
				steps = p.Steps
			}
			if len(wall) == 0 {
				continue
			}
			c := seedCost{Stage: k[0], Part: k[1], Tool: tool, Wall: median(wall), User: median(user), Sys: median(sys),
				SysShare: median(share), MinFlt: median(faults), Steps: steps}
			if steps > 0 {
				c.FaultsPerStep = c.MinFlt / float64(steps)
			}
			sr.Costs = append(sr.Costs, c)
		}
		if len(t.Finetune) == 0 || len(t.PyTorch) == 0 {
			continue
		}
		t.FinetuneMed, t.PyTorchMed = median(t.Finetune), median(t.PyTorch)
		t.Ratio = t.FinetuneMed / t.PyTorchMed
		for i := range min(len(t.Finetune), len(t.PyTorch)) {
			t.PairRatios = append(t.PairRatios, t.Finetune[i]/t.PyTorch[i])
		}
		t.PairRatio = median(t.PairRatios)
		sr.Times = append(sr.Times, t)
	}
}

// partName names a part for a table.
func partName(stage, part string) string {
	switch {
	case stage == "":
		return part
	case part == partTrain:
		return stage + " epoch, training"
	default:
		return stage + " epoch, validation"
	}
}

func joinf(v []float64, format string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, ", ")
}

func (sr *seedResults) print(w io.Writer) {
	fmt.Fprintf(w, "\n== seed: %s, %d train / %d val images, batch %d, %d threads ==\n",
		sr.Arch, sr.TrainImages, sr.ValImages, sr.Batch, sr.Threads)
	fmt.Fprintf(w, "%-28s %12s %12s %7s %9s  %s\n", "part", "finetune s", "PyTorch s", "ratio", "pairwise", "pairs")
	for _, t := range sr.Times {
		fmt.Fprintf(w, "%-28s %12.2f %12.2f %7.3f %9.3f  %s\n", partName(t.Stage, t.Part), t.FinetuneMed, t.PyTorchMed,
			t.Ratio, t.PairRatio, joinf(t.PairRatios, "%.3f"))
	}
	fmt.Fprintf(w, "\n%-28s %-9s %9s %9s %9s %8s %12s %12s\n", "part", "tool", "wall s", "user s", "sys s", "sys/CPU",
		"minor faults", "faults/step")
	for _, c := range sr.Costs {
		fmt.Fprintf(w, "%-28s %-9s %9.2f %9.2f %9.2f %7.1f%% %12.0f %12s\n", partName(c.Stage, c.Part), c.Tool, c.Wall,
			c.User, c.Sys, 100*c.SysShare, c.MinFlt, perStep(c))
	}
}

func perStep(c seedCost) string {
	if c.Steps == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f", c.FaultsPerStep)
}

// markdown writes the results as Markdown tables.
func (sr *seedResults) markdown(w io.Writer) {
	fmt.Fprintf(w, "# Seed scenario\n\n%s at 224×224, 2 classes × %d JPEGs of %d×%d (%d training, %d validation images: %s), "+
		"batch %d, %d intra-op threads and %d loader workers on both sides, fp32; weights %s.\n\n",
		sr.Arch, sr.PerClass, seedSide, seedSide, sr.TrainImages, sr.ValImages, sr.Data, sr.Batch, sr.Threads, sr.Threads, sr.Weights)
	fmt.Fprintf(w, "finetune runs as `%s`; PyTorch runs `bench/py/seed.py train`. From %s to %s.\n\n",
		strings.Join(sr.Command, " "), sr.Start, sr.End)
	fmt.Fprint(w, "| part | finetune | PyTorch | ratio | pairwise ratio | per pair |\n| --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, t := range sr.Times {
		fmt.Fprintf(w, "| %s | %.2f s | %.2f s | **%.3f** | %.3f | %s |\n", partName(t.Stage, t.Part), t.FinetuneMed,
			t.PyTorchMed, t.Ratio, t.PairRatio, joinf(t.PairRatios, "%.3f"))
	}
	fmt.Fprint(w, "\nratio: finetune's median / PyTorch's median; pairwise: the median of the ratios of the runs made one after the other. "+
		"finetune's training seconds are its EpochMetrics.Seconds; its validation runs from the epoch's last step event to its epoch event "+
		"(the copy of the best weights included). "+
		"In the table below, finetune's training wall time runs from the stage's start, so it also holds the stage's preparation "+
		"(such as the fold of the frozen backbone).\n\n")
	fmt.Fprint(w, "| part | tool | wall | user CPU | system CPU | system / CPU | minor faults | per step |\n"+
		"| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range sr.Costs {
		fmt.Fprintf(w, "| %s | %s | %.2f s | %.2f s | %.2f s | %.1f %% | %.0f | %s |\n", partName(c.Stage, c.Part), c.Tool,
			c.Wall, c.User, c.Sys, 100*c.SysShare, c.MinFlt, perStep(c))
	}
	fmt.Fprint(w, "\nMedians over the runs. CPU time and faults of a part come from /proc/PID/stat read as the lines that bound it arrived "+
		"(children the process waited for included, so PyTorch's DataLoader workers count); the whole process's from getrusage.\n\n"+
		"Every run, in order:\n\n")
	for _, r := range sr.Runs {
		fmt.Fprintf(w, "- %s\n", strings.TrimPrefix(r.String(), "seed "))
	}
}
