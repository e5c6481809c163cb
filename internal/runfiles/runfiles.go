// Package runfiles is a stopgap finetune.Recorder that keeps a run's
// record in its output.dir, in the files the engine used to write itself
// (config.yaml, metrics.jsonl, shift.json, search.json, cv.json,
// result.json and the checkpoints), until package finetune/runfolder
// takes its place.
package runfiles

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/finetune-go/finetune/finetune"
)

// Recorder writes each run into the output.dir of its configuration
// (output.dir/foldN for a fold of a cross-validation).
type Recorder struct {
	dir string
}

// Record implements finetune.Recorder.
func (r *Recorder) Record(e finetune.Event) error {
	if e.Kind == finetune.EventRunStart {
		r.dir = e.Run.Config.Output.Dir
	}
	dir := r.dir
	if e.Fold >= 0 {
		dir = filepath.Join(dir, fmt.Sprintf("fold%d", e.Fold+1))
	}
	switch e.Kind {
	case finetune.EventRunStart:
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := keepMetrics(filepath.Join(dir, "metrics.jsonl"), e.Run.Resumed); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(finetune.ConfigYAML(e.Run.Config)), 0o644)
	case finetune.EventEpoch:
		b, err := json.Marshal(e.Metrics)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(dir, "metrics.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(append(b, '\n')); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case finetune.EventArtifact:
		return writeJSON(filepath.Join(dir, e.Artifact.Name), e.Artifact.Value)
	case finetune.EventCheckpoint:
		return e.Checkpoint.Write(filepath.Join(dir, e.Checkpoint.Name+".safetensors"))
	case finetune.EventRunEnd:
		return writeJSON(filepath.Join(dir, "result.json"), e.Result.Summary())
	}
	return nil
}

// keepMetrics cuts the metrics file at path to its first n lines: the
// epochs a resumed run's checkpoint holds.
func keepMetrics(path string, n int) error {
	if n == 0 {
		return os.WriteFile(path, nil, 0o644)
	}
	raw, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) { // resumed into another folder: the history starts here
		return err
	}
	var kept bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for i := 0; i < n && sc.Scan(); i++ {
		kept.Write(sc.Bytes())
		kept.WriteByte('\n')
	}
	return os.WriteFile(path, kept.Bytes(), 0o644)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
