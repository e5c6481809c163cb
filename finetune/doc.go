// Package finetune fine-tunes a pretrained convolutional network on a
// small image classification dataset, with the defaults that keep such a
// run from overfitting or being undone by BatchNorm: a small head on
// global average pooling, BatchNorm statistics kept or re-estimated on the
// new images from a measured shift (train.batchnorm: auto), a head stage
// on the frozen backbone then layer3 and layer4 at 3× the head's learning
// rate,
// steps per epoch = one pass, early stopping with the best weights kept,
// augmentation on training images only, and a linear probe as the
// baseline the result must beat.
//
// A run walks one way:
//
//	Config ──Validate──▶ Plan ──loop──▶ Events ──▶ Recorder (a run folder)
//
// Config is plain data (the same keys in a YAML file, config.yaml, a
// checkpoint, FINETUNE_ environment variables and the command line's
// flags). Train resolves every automatic setting once, before the first
// epoch, into a Plan (device, precision, BatchNorm mode, stages, learning
// rate, the probe's start), reports each decision with its reason, and
// trains exactly that plan; the configuration is never changed. The
// engine writes no file itself: everything worth keeping (the plan, each
// epoch's metrics, reports, checkpoints, the result) goes as events to
// Options.Recorder, and package finetune/runfolder is the Recorder that
// writes a run folder. Progress goes to Options.Observer.
//
// Ownership: a *Model (Result.Model, LoadCheckpoint, NewModel) holds
// native memory; its owner calls Model.Close. Tensors passed to and
// returned from the package follow package torch's scopes.
//
// The command-line tool cmd/finetune is built on this package; its
// manual (cmd/finetune/doc.go) describes every key.
package finetune
