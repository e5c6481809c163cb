package finetune

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	EventInfo    EventKind = "info"
	EventWarning EventKind = "warning"
	EventStage   EventKind = "stage"
	EventStep    EventKind = "step"
	EventEpoch   EventKind = "epoch"
	EventFold    EventKind = "fold"
)

// Event is a progress report from a run, for a library user's callback
// (Options.Observer) and the command-line tool's output.
type Event struct {
	Kind    EventKind `json:"event"`
	Fold    int       `json:"fold"` // -1 outside cross-validation
	Stage   string    `json:"stage,omitempty"`
	Message string    `json:"message,omitempty"`
	// Step events: steps done in the epoch, of Steps; the epoch's running
	// mean loss; the learning rate; throughput.
	Epoch int `json:"epoch,omitempty"`
	// Epochs is a stage event's maximum number of epochs.
	Epochs          int           `json:"epochs,omitempty"`
	Step            int           `json:"step,omitempty"`
	Steps           int           `json:"steps,omitempty"`
	Loss            float64       `json:"loss,omitempty"`
	LR              float64       `json:"lr,omitempty"`
	ImagesPerSecond float64       `json:"images_per_second,omitempty"`
	Metrics         *EpochMetrics `json:"metrics,omitempty"`
	// Record events (see Recorder): exactly one is set, by kind.
	Run        *RunStart        `json:"run,omitempty"`
	Artifact   *Artifact        `json:"-"`
	Checkpoint *CheckpointWrite `json:"-"`
	Result     *Result          `json:"-"`
}

// EpochMetrics is one line of metrics.jsonl.
type EpochMetrics struct {
	Fold          int     `json:"fold"`
	Stage         string  `json:"stage"`
	Epoch         int     `json:"epoch"`
	GlobalEpoch   int     `json:"global_epoch"`
	TrainLoss     float64 `json:"train_loss"`
	TrainAccuracy float64 `json:"train_accuracy"`
	ValLoss       float64 `json:"val_loss"`
	ValAccuracy   float64 `json:"val_accuracy"`
	// Gap is train accuracy minus validation accuracy: how much the
	// model overfits.
	Gap     float64 `json:"gap"`
	LR      float64 `json:"lr"`
	Seconds float64 `json:"seconds"`
	// Best marks the epoch whose weights are the best so far.
	Best bool `json:"best"`
}

// runLog appends epochs to metrics.jsonl as they end.
type runLog struct {
	f *os.File
	w *bufio.Writer
}

func openRunLog(dir string, appendTo bool) (*runLog, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(filepath.Join(dir, "metrics.jsonl"), flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("output.dir: %w", err)
	}
	return &runLog{f: f, w: bufio.NewWriter(f)}, nil
}

func (l *runLog) Write(em EpochMetrics) error {
	b, err := json.Marshal(em)
	if err != nil {
		return err
	}
	l.w.Write(b)
	l.w.WriteByte('\n')
	return l.w.Flush()
}

func (l *runLog) Close() error {
	l.w.Flush()
	return l.f.Close()
}

// ReadMetrics reads a run's metrics.jsonl.
func ReadMetrics(path string) ([]EpochMetrics, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []EpochMetrics
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var em EpochMetrics
		if err := json.Unmarshal(sc.Bytes(), &em); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, em)
	}
	return out, sc.Err()
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
