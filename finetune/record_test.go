package finetune

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// dirRecorder keeps a run's record in its output folder (foldN for a
// fold), as the tests read it: metrics.jsonl, the JSON artifacts,
// result.json and the checkpoints. It also lists what it saw.
type dirRecorder struct {
	dir string
	// seen is every record event: kind, and the name of an artifact or
	// checkpoint.
	seen []string
	runs []RunStart
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
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return cutLines(filepath.Join(dir, "metrics.jsonl"), e.Run.Resumed)
	case EventEpoch:
		r.seen = append(r.seen, string(e.Kind))
		b, err := json.Marshal(e.Metrics)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(dir, "metrics.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.Write(append(b, '\n'))
		return err
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

// cutLines keeps the first n lines of the file at path (none: empty).
func cutLines(path string, n int) error {
	raw, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var kept bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for i := 0; i < n && sc.Scan(); i++ {
		kept.Write(append(sc.Bytes(), '\n'))
	}
	return os.WriteFile(path, kept.Bytes(), 0o644)
}

func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
