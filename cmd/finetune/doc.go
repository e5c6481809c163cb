// Command finetune fine-tunes pretrained convolutional networks (ResNet50
// first) on small image datasets through libtorch, with overfitting and
// BatchNorm handled right by default.
//
// Usage:
//
//	finetune <command> [flags] [arguments]
//
// Flags and arguments may come in any order; "--" ends the flags.
// 'finetune <command> --help' lists a command's flags, and every command
// takes --verbose.
//
// # Commands
//
//	init [--force] [FILE]
//	    Writes the default configuration, every key commented, to FILE
//	    (default finetune.yaml); it refuses to overwrite a file without
//	    --force.
//	config [--config FILE] [flags]
//	    Prints the configuration a run would use, every default filled
//	    in, and checks it.
//	inspect [--config FILE | --checkpoint FILE] [--classes N] [--data DIR] [flags]
//	    Shows the model as it will train, without reading pretrained
//	    weights: each part's output shape at the configured image size,
//	    parameters in total and trainable in each stage of the recipe,
//	    the mode of every BatchNorm layer while training (a count per
//	    part; each layer with --verbose), the head's size and memory, the
//	    size of a full and a delta checkpoint, the steps of an epoch when
//	    data.train exists, and a warning when the head is large enough to
//	    memorise a small dataset (a flattened 10×10×2048 map into 1024
//	    units at 300×300 pixels is 210M parameters, 2.3 GiB with Adam's
//	    state). --format json prints the same figures as JSON. With
//	    --data DIR it loads the pretrained weights and measures how far
//	    DIR's images are from the stored BatchNorm statistics, per stage
//	    (stem, layer1..layer4), with what train.batchnorm: auto and
//	    recipe: auto would choose, and a warning when the normalised
//	    images suggest that data.mean and data.std do not fit. With
//	    --checkpoint FILE it first reads and checks every tensor of FILE
//	    and its training state: a damaged file is an error (exit 1). With
//	    --augment N it draws N training images as the training pipeline
//	    (augment.*) delivers them, each image's evaluation view first in
//	    its row, into augment.png (--augment-png FILE).
//	lr-find [--config FILE | --checkpoint FILE] [--steps N] [--stage N] [--png FILE] [flags]
//	    Smith's learning-rate range test on the model and data a run
//	    would train (or on a checkpoint's weights): a step per batch, the
//	    rate growing exponentially from --min-lr 1e-7 to --max-lr 10 over
//	    --steps 200, until the smoothed loss passes four times its lowest.
//	    Draws lr.png and prints the rate where the smoothed loss falls
//	    fastest, a value for train.lr. The weights are left as they were.
//	run [--config FILE] [--resume PATH] [--quiet | --json] [flags]
//	    Trains as configured; see Runs below.
//	eval --checkpoint FILE --data DIR [--format table|json] [--png FILE] [--predictions FILE] [--data.on_bad_image error|skip]
//	    Evaluates a checkpoint on a folder with one subfolder of images
//	    per class (the checkpoint's classes) through the checkpoint's
//	    evaluation transforms: accuracy, cross entropy, precision, recall
//	    and F1 per class, the confusion matrix (drawn into a PNG with
//	    --png), and with --predictions FILE every image's prediction as
//	    CSV, in the columns of a run's predictions.csv (its split is the
//	    folder's name). A damaged image is an error unless
//	    --data.on_bad_image skip leaves it out and lists it (the run's
//	    setting is not used).
//	predict --checkpoint FILE [--format table|csv|json] [--tta] [--explain DIR] [--data.on_bad_image error|skip] PATH...
//	    Classifies images, or folders of images searched recursively: the
//	    most probable class and every class's probability. --tta averages
//	    the softmax of each image and of its horizontal mirror. --explain
//	    DIR writes each image's Grad-CAM overlay, where the model found the
//	    evidence for the class it predicts, to DIR/<name>.gradcam.png. A
//	    damaged image is an error naming it, as in PyTorch, unless
//	    --data.on_bad_image skip leaves it out: one warning line, and the
//	    list under "skipped_images" with --format json.
//	version [--format table|json]
//	    Prints the versions of finetune, Go and libtorch, with libtorch's
//	    CUDA, cuDNN and visible GPUs, and the malloc in use (tcmalloc,
//	    linked in so that a step reuses the memory the last one freed).
//
// eval and predict take --device (auto, cpu, cuda or cuda:N). A delta
// checkpoint (best-delta.safetensors) is rebuilt from the pretrained
// weights it was made from: named weights through torch hub's cache, a
// file found relative to the checkpoint's folder or where it was, and
// checked against the SHA-256 the checkpoint recorded;
// --model.weights FILE points at it when it has moved.
//
// # Configuration
//
// Every configuration key is, with increasing precedence: a key of the
// configuration file (YAML, JSON or TOML: --config FILE, else
// ./finetune.yaml when it exists, else for --resume the checkpoint's own
// configuration), an environment variable (FINETUNE_ and the key in
// capitals with _ for dots: FINETUNE_TRAIN_LR) and a flag (--train.lr
// 0.01). A flag overrides only when it is given. 'finetune run --help'
// lists every key with its default, its variable and what it does;
// 'finetune init' writes them all to a file, and 'finetune config' shows
// what a run would use. Lists take commas: --model.head.hidden 512,256,
// --stages head:5:all,finetune:15:layer3:0.1 (NAME:EPOCHS:FREEZE[:MULT]).
// FREEZE is none, all or a stage of the network, frozen with those before
// it: a ResNet's stem and layer1..layer4; ConvNeXt's, Swin's, RegNet's,
// EfficientNet's and MobileNetV3's stem, stage1.. (and lastconv for the
// last two); ViT's embed and block1..block12. The default's layer2 means
// on every network the stage before the last two, which train.
// Booleans take --key or --key=false. An unknown key in the file, or a
// FINETUNE_ variable a typo away from a key's, is an error naming the key
// meant.
//
// # Runs
//
// A run trains stage after stage, validates every epoch and ends with the
// best epoch's weights. Its folder is output.dir or, by default, a new
// one, runs/<UTC time> (runs/20261203-104512), with runs/latest a link to
// the newest run; a resumed run continues in the folder of its
// checkpoint, and refuses training data that changed since the checkpoint
// (files added, removed or modified, named) unless --allow-data-change. A folder that already holds a run is refused, one in use by
// another process too (naming its PID), and a run that fails before its
// first epoch leaves nothing behind. The folder receives:
//
//	config.yaml            the configuration used, every key filled in
//	plan.json              what the run settled before its first epoch
//	metrics.jsonl          one line per epoch: losses, accuracies, gap, lr
//	result.json            final metrics, per-class figures, confusion
//	best.safetensors       the best model (output.checkpoint: full or both)
//	best-delta.safetensors what differs from the pretrained weights
//	last.safetensors       the last epoch's state: everything needed to resume
//	curves.png             loss and accuracy per epoch, train and validation,
//	                       the gap shaded, stages and the best epoch marked
//	predictions.csv        every test and validation image: path, split,
//	                       true and predicted class, prob_<class> per
//	                       class, loss
//	confusion.png          the test confusion matrix (validation's without
//	                       data.test)
//	confusion_val.png      the validation one, beside a test set's
//	top_losses.png         the 16 test (else validation) images with the
//	                       highest loss, each with its Grad-CAM overlay
//	report.html            all of it on one self-contained page: the plan
//	                       and why, curves, confusion matrices, per-class
//	                       metrics, the probe, top losses, times
//	events.out.tfevents.*  TensorBoard, with output.tensorboard: scalars
//	                       per epoch, the plan as text, the confusion
//	                       matrices and top losses as images
//
// With cross-validation (cv.folds) each fold has its folder, foldN.
//
// On a terminal each epoch shows a progress bar (steps, loss, images per
// second, time left); elsewhere, such as a pipe or CI, each epoch is one
// plain line without control characters. --quiet prints the final
// summary only; --json prints JSON lines, every event (see
// finetune.Event) and then one summary object ("event": "summary"), or
// an error object ("event": "error"). Warnings go to standard error.
//
// Before the first stage, the run settles what the configuration leaves
// to the data, and says so: train.batchnorm: auto measures the BatchNorm
// shift on up to 256 training images and picks adapt or frozen;
// recipe: auto picks the fine-tuning stages' freeze point; on the frozen
// backbone's features the linear probe is fitted (reported as a
// baseline, the head's starting point with model.head.init: probe, the
// whole model with recipe: linear-probe); and search: quick, when the
// training features are cached, picks the head's learning rate and
// weight decay across cross-validation folds (search.json). shift.json
// holds the measured shift.
//
// The summary gives the best epoch, test and validation accuracy, the gap
// between training and validation accuracy, the time taken and the
// checkpoints with their sizes. When the model overfits (a gap over 0.05
// at the best epoch, or at the last one with training accuracy over
// 0.98) it names the settings that usually close the gap, with the values
// the run used. The per-class tables follow, the test set's first.
//
// An interrupt (Ctrl-C or SIGTERM) lets the step in progress finish,
// writes last.safetensors and exits with status 130, printing the
// command that resumes: 'finetune run --resume RUN/last.safetensors'
// continues exactly where the run stopped. A second interrupt stops at
// once.
//
// # Exit status
//
//	0    success
//	1    the command failed (a run, a damaged image, a missing file)
//	2    a usage or configuration error: a bad flag, an unknown or
//	     invalid configuration key
//	130  interrupted
//
// Errors are one line on standard error, "finetune: <message>"; with
// --verbose the errors that caused it follow, one per line.
package main
