package runfolder_test

import (
	"fmt"
	"log"
	"os"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/finetune/runfolder"
)

// The engine reports a run as events; a Folder turns them into the run
// folder's files. Here a one-epoch run is recorded by hand.
func Example() {
	runs, err := os.MkdirTemp("", "runs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(runs)
	f, err := runfolder.New(runs, runfolder.Options{}) // runs/<UTC time>
	if err != nil {
		log.Fatal(err)
	}
	// finetune.Train(ctx, cfg, finetune.Options{Recorder: f}) sends
	// these events.
	em := finetune.EpochMetrics{Fold: -1, Stage: "head", Epoch: 1, GlobalEpoch: 1, ValAccuracy: 0.9, Best: true}
	for _, e := range []finetune.Event{
		{Kind: finetune.EventRunStart, Fold: -1, Run: &finetune.RunStart{Config: finetune.Defaults(), Plan: &finetune.Plan{Device: "cpu"}}},
		{Kind: finetune.EventEpoch, Fold: -1, Metrics: &em},
		{Kind: finetune.EventRunEnd, Fold: -1, Result: &finetune.Result{Best: em, History: []finetune.EpochMetrics{em}}},
	} {
		if err := f.Record(e); err != nil {
			log.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	for _, file := range f.Files() {
		fmt.Println(file.Path[len(f.Dir())+1:])
	}
	link, _ := os.Readlink(runs + "/latest")
	fmt.Println(link == f.Dir()[len(runs)+1:])
	// Output:
	// config.yaml
	// curves.png
	// metrics.jsonl
	// plan.json
	// report.html
	// result.json
	// true
}
