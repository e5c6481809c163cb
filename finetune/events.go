package finetune

import (
	"errors"
	"fmt"
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
	// EventStageStop says a stage stopped before its last epoch, and why
	// (Stop is set).
	EventStageStop EventKind = "stage_stop"
)

// Event is a progress report from a run, for a library user's callback
// (Options.Observer) and the command-line tool's output.
type Event struct {
	Kind    EventKind `json:"event"`
	Fold    int       `json:"fold"` // -1 outside cross-validation
	Stage   string    `json:"stage,omitempty"`
	Message string    `json:"message,omitempty"`
	// Skipped is the file of a warning that a run skipped it under
	// data.on_bad_image: skip; such a warning comes once per file and
	// the file is also in Result.Skipped.
	Skipped string `json:"skipped,omitempty"`
	// Step events: steps done in the epoch, of Steps; the epoch's running
	// mean loss; the learning rate; throughput.
	Epoch int `json:"epoch,omitempty"`
	// Epochs is a stage event's maximum number of epochs.
	Epochs int `json:"epochs,omitempty"`
	// Estimate and RunEstimate are a stage event's estimated seconds of
	// the stage (PlanStage.EstimatedSeconds) and of the run from the
	// stage's start: it and the stages after it.
	Estimate        float64       `json:"estimate,omitempty"`
	RunEstimate     float64       `json:"run_estimate,omitempty"`
	Stop            *StageStop    `json:"stop,omitempty"`
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
	TopLosses  *TopLossReport   `json:"-"`
}

// EpochMetrics is one line of metrics.jsonl.
type EpochMetrics struct {
	Fold        int    `json:"fold"`
	Stage       string `json:"stage"`
	Epoch       int    `json:"epoch"`
	GlobalEpoch int    `json:"global_epoch"`
	// TrainLoss is the mean loss of the epoch's training steps: under
	// augmentation, dropout, mixup and label smoothing, with the weights
	// as they changed during the epoch.
	TrainLoss float64 `json:"train_loss"`
	// TrainStepAccuracy is the training steps' accuracy, under the same
	// conditions as TrainLoss.
	TrainStepAccuracy float64 `json:"train_step_accuracy"`
	// TrainAccuracy and TrainEvalLoss are the epoch's model measured as
	// validation is, in evaluation mode without augmentation, on a fixed
	// sample of the training images (Plan.TrainSample): what the model
	// learnt of the images it trains on, comparable with ValAccuracy.
	TrainAccuracy float64 `json:"train_accuracy"`
	TrainEvalLoss float64 `json:"train_eval_loss"`
	ValLoss       float64 `json:"val_loss"`
	ValAccuracy   float64 `json:"val_accuracy"`
	// Gap is TrainAccuracy minus ValAccuracy, both in evaluation mode:
	// how much the model overfits.
	Gap     float64 `json:"gap"`
	LR      float64 `json:"lr"`
	Seconds float64 `json:"seconds"`
	// Best marks the epoch whose weights are the best so far.
	Best bool `json:"best"`
}

// StageStop is a stage that stopped before its last epoch: after which
// epoch of the stage (0: it was skipped), and why: "early_stopping" (its
// validation metric stopped improving), "probe" (it did not beat the
// run's best before it, the probe's model included; see
// TrainConfig.ProbePatience) or "max_time" (its next epoch would have
// ended past the budget, Plan.MaxTime).
type StageStop struct {
	Stage   string `json:"stage"`
	Epoch   int    `json:"epoch"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// errRecord marks an error of the Recorder: the run stopped because its
// record could not be kept.
var errRecord = errors.New("recording the run")

// emitter sends a run's events to the Observer (progress kinds) and the
// Recorder (every kind). Only the primary process reports, but for its
// warnings. A Recorder's error is sticky: record returns it, and every
// later record, so a progress event's failure stops the run at the
// next record event.
type emitter struct {
	observer func(Event)
	recorder Recorder
	fold     int
	primary  bool
	err      error
}

func newEmitter(opts Options, fold int) *emitter {
	return &emitter{observer: opts.Observer, recorder: opts.Recorder, fold: fold, primary: PrimaryProcess()}
}

// emit reports a progress event.
func (e *emitter) emit(ev Event) {
	_ = e.record(ev)
}

// record reports ev and returns the Recorder's error, if any so far.
func (e *emitter) record(ev Event) error {
	if !e.primary {
		if ev.Kind == EventWarning && e.observer != nil {
			ev.Fold = e.fold
			e.observer(ev)
		}
		return nil
	}
	ev.Fold = e.fold
	if e.recorder != nil && e.err == nil {
		if err := e.recorder.Record(ev); err != nil {
			e.err = fmt.Errorf("%w: %s: %w", errRecord, ev.Kind, err)
		}
	}
	if e.observer != nil && progress[ev.Kind] {
		e.observer(ev)
	}
	return e.err
}

// progress are the kinds an Observer receives.
var progress = map[EventKind]bool{EventInfo: true, EventWarning: true, EventStage: true, EventStep: true,
	EventEpoch: true, EventFold: true, EventStageStop: true}
