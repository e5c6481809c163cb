package finetune

import (
	"fmt"
	"slices"

	"github.com/finetune-go/finetune/vision/models"
)

// checkBatchNorm checks train.batchnorm for arch. A network without
// BatchNorm (ConvNeXt, ViT, Swin: LayerNorm normalises each image by
// itself) takes only auto: an explicit policy would ask for something
// that cannot happen, and a run that silently ignored it would leave its
// user believing, say, that statistics were adapted.
func checkBatchNorm(arch, mode string) error {
	if err := oneOf("train.batchnorm", mode, "auto", "frozen", "train", "adapt", "legacy"); err != nil {
		return err
	}
	if mode != "auto" && !models.HasBatchNorm(arch) {
		return fmt.Errorf("train.batchnorm: %s, but %s has no BatchNorm layers (LayerNorm normalises each image by itself: "+
			"there are no statistics to freeze, train or adapt): leave it auto", mode, arch)
	}
	return nil
}

// checkFreeze checks a stage's freeze point for arch: a ResNet's are
// FreezePoints; another family's are the names of its stages, which the
// model checks when it freezes (Model.FreezePoints) and are not known
// before it is built.
func checkFreeze(arch, key, point string) error {
	if slices.Contains(models.Archs(), arch) {
		return oneOf(key, point, FreezePoints...)
	}
	if point == "" {
		return fmt.Errorf("%s: required", key)
	}
	return nil
}
