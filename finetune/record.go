package finetune

// This file is the contract between the engine and whatever keeps a
// run's record (package finetune/runfolder writes it to disk): the engine
// writes no file itself; it reports everything worth keeping as events to
// the Recorder the caller installs.

// Recorder keeps a run's record. Record is called, in order, with every
// event of the run; an error from it stops the run (a record that cannot
// be written is no record) and is returned from Train wrapped.
// A Recorder sees events of every fold of a cross-validation (Event.Fold
// says which) and, in a data-parallel group, only rank 0's.
//
// The record events of a run, in order (progress events come between):
//
//	run_start                    the plan is resolved (Run.Resumed > 0: a resume)
//	artifact shift.json          when the shift was measured (new runs only)
//	artifact search.json         when search: quick ran (new runs only)
//	epoch, checkpoint last       after every epoch
//	checkpoint best, best-delta  as output.checkpoint says
//	top_losses                   the worst test (else validation) images
//	run_end                      Result set
//
// An interrupted run ends with checkpoint last instead (no run_end); a
// failed one just stops. A cross-validation is, for each fold, a fold
// event and that fold's run (Event.Fold set), then artifact cv.json
// (Fold -1).
type Recorder interface {
	Record(Event) error
}

// Event kinds that carry a run's record, besides the progress kinds.
const (
	// EventRunStart opens a run (or a fold of one): Run is set. It comes
	// after the plan is resolved and before the first epoch.
	EventRunStart EventKind = "run_start"
	// EventArtifact carries a JSON report to keep beside the run
	// (shift.json, search.json, plan.json): Artifact is set.
	EventArtifact EventKind = "artifact"
	// EventCheckpoint asks for a checkpoint file: Checkpoint is set.
	EventCheckpoint EventKind = "checkpoint"
	// EventRunEnd closes a run (or a fold) that finished: Result is set.
	EventRunEnd EventKind = "run_end"
	// EventTopLosses carries the images of the final model with the
	// highest loss, each with its Grad-CAM map: TopLosses is set. It
	// comes once, before run_end.
	EventTopLosses EventKind = "top_losses"
)

// RunStart describes a run as it begins.
type RunStart struct {
	// Config is the configuration as given and validated; the engine
	// never changes it.
	Config Config `json:"config"`
	// Plan is every decision resolved before the first epoch.
	Plan *Plan `json:"plan"`
	// Resumed is how many epochs of the run's history the resume
	// checkpoint holds (0 for a new run): a record keeps exactly these
	// and drops any later epoch it wrote before the interruption.
	Resumed int `json:"resumed"`
	// Resume is the checkpoint the run resumes from, "" for a new run.
	Resume string `json:"resume,omitempty"`
}

// Artifact is a JSON report of the run.
type Artifact struct {
	// Name is the file name, e.g. "shift.json".
	Name string
	// Value is marshalled with encoding/json.
	Value any
}

// Checkpoint names.
const (
	// CheckpointLast is the state after the last finished step: the
	// last epoch's weights, optimizer and training state, to resume from.
	CheckpointLast = "last"
	// CheckpointBest is the whole model with the weights the run ends
	// with (the best epoch's, or the probe's under probe_fallback).
	CheckpointBest = "best"
	// CheckpointBestDelta is CheckpointBest without what the pretrained
	// weights already hold: head, BatchNorm statistics, unfrozen layers.
	CheckpointBestDelta = "best-delta"
)

// CheckpointWrite is a checkpoint the engine asks the recorder to keep.
type CheckpointWrite struct {
	// Name is one of CheckpointLast, CheckpointBest, CheckpointBestDelta;
	// the file is Name + ".safetensors".
	Name string
	// Write writes the checkpoint to path, the file's final name: the
	// engine names it in messages (the resume hint) and stores paths
	// relative to its folder (a delta's base weights). The write is
	// atomic (a temporary file in the same folder, synced, then renamed), so a
	// crash leaves the old file or the new one. Write is valid only
	// during the Record call.
	Write func(path string) error
}
