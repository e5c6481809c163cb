package finetune

import (
	"context"
	"fmt"

	"github.com/finetune-go/finetune/internal/printable"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/vision/data"
)

// Evaluate runs m over the images of dir, a folder with one subfolder per
// class, with the evaluation transforms of the checkpoint's configuration
// (meta.Config: resize, center crop; meta.Normalize), and returns
// the plain cross entropy, the accuracy and the confusion matrix, exactly
// as validation computes them during training (the backbone in bfloat16
// when meta.Plan says the run was bf16). dir must have the
// checkpoint's classes. onBadImage is error or skip, as data.on_bad_image:
// the training run's setting is not inherited, so that every image is
// counted unless the caller says otherwise; skipped files are listed in
// the Evaluation.
func Evaluate(ctx context.Context, m *Model, meta Meta, dir, onBadImage string) (_ *Evaluation, err error) {
	defer printable.Escape(&err)
	if onBadImage != "error" && onBadImage != "skip" {
		return nil, fmt.Errorf("data.on_bad_image: must be error or skip, got %q", onBadImage)
	}
	meta.Config.Data.OnBadImage = onBadImage
	set, err := data.ImageFolder(dir)
	if err != nil {
		return nil, err
	}
	ref := &data.Dataset{Root: "the checkpoint", Classes: meta.Classes}
	if err := data.MatchClasses(ref, set); err != nil {
		return nil, err
	}
	d, loader, err := evalLoader(meta, set)
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	at := modelPlacement(m)
	if meta.Plan != nil && meta.Plan.Precision == "bf16" {
		at.frozen = torch.BFloat16 // as the run validated
	}
	r := &run{cfg: meta.Config, d: d, m: m, at: at}
	ev, err := r.evaluate(ctx, loader, nil, set)
	m.Train(false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	ev.Skipped = loader.Skipped()
	return ev, nil
}

// evalLoader serves every sample of set, in order, with the evaluation
// transforms of meta's configuration.
func evalLoader(meta Meta, set *data.Dataset) (*Data, *data.BatchLoader, error) {
	cfg := meta.Config
	pipe, err := data.EvalPipeline(meta.evalResize(), cfg.Data.ImageSize, meta.Normalize)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint configuration: %w", err)
	}
	d := &Data{Classes: meta.Classes, evalPipe: pipe}
	// The caller reports the skipped files as data (loader.Skipped), so
	// the loader prints nothing about them.
	loader, err := d.loader(cfg, placement{}, set, allIndices(len(set.Samples)), keepAllLoader, nil, func(data.SkippedImage) {})
	if err != nil {
		return nil, nil, err
	}
	return d, loader, nil
}

// ModelDevice returns the device m's parameters are on.
func ModelDevice(m *Model) torch.Device {
	dev, _ := m.placement()
	return dev
}
