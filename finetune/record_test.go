package finetune

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// dirRecorder keeps a run's record as the tests read it: the JSON
// artifacts, result.json and the checkpoints in its output folder
// (foldN for a fold), the epochs in memory. It also lists what it saw.
type dirRecorder struct {
	dir string
	// seen is every record event: kind, and the name of an artifact or
	// checkpoint.
	seen []string
	runs []RunStart
	// epochs are the history of the latest run (fold): a resumed run's
	// keeps the epochs its checkpoint holds.
	epochs []EpochMetrics
}

// recorded returns options whose Recorder writes into cfg's output.dir.
func recorded(cfg Config) (Options, *dirRecorder) {
	r := &dirRecorder{dir: cfg.Output.Dir}
	return Options{Recorder: r}, r
}

func (r *dirRecorder) Record(e Event) error {
	dir := r.dir
	if e.Fold >= 0 {
		dir = filepath.Join(dir, fmt.Sprintf("fold%d", e.Fold+1))
	}
	switch e.Kind {
	case EventRunStart:
		r.seen = append(r.seen, string(e.Kind))
		r.runs = append(r.runs, *e.Run)
		r.epochs = r.epochs[:e.Run.Resumed]
		return os.MkdirAll(dir, 0o755)
	case EventEpoch:
		r.seen = append(r.seen, string(e.Kind))
		r.epochs = append(r.epochs, *e.Metrics)
	case EventArtifact:
		r.seen = append(r.seen, "artifact "+e.Artifact.Name)
		return writeJSONFile(filepath.Join(dir, e.Artifact.Name), e.Artifact.Value)
	case EventCheckpoint:
		r.seen = append(r.seen, "checkpoint "+e.Checkpoint.Name)
		return e.Checkpoint.Write(filepath.Join(dir, e.Checkpoint.Name+".safetensors"))
	case EventRunEnd:
		r.seen = append(r.seen, string(e.Kind))
		return writeJSONFile(filepath.Join(dir, "result.json"), e.Result.Summary())
	case EventFold:
		r.seen = append(r.seen, string(e.Kind))
	}
	return nil
}

func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
