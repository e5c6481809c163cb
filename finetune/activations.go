package finetune

// Activations cached at the freeze point: a stage that trains the
// layers after a fixed prefix of the backbone (Model.FixedPrefix) runs
// the prefix once per training image and augmented view and then, every
// epoch, only the layers that train.
//
// Each view is a real one, made by the training pipeline as the
// uncached path would see it in the same pass. The cheaper alternative,
// a single un-augmented view with flips applied to the activations, is
// not used: a horizontal flip commutes with the convolutional prefix only
// approximately (its kernels are not symmetric), and that error has not
// been measured; with fewer views than passes the views repeat instead.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/finetune-go/finetune/internal/plural"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
)

// activationViews returns how many views of n images, perImage bytes
// each, a stage that makes passes passes over its images caches within
// budget bytes: a view per pass at most, and one without augmentation,
// where every pass sees the same images; 0 when not one fits.
func activationViews(budget, perImage int64, n, passes int, augmented bool) int {
	want := int64(passes)
	if !augmented {
		want = 1
	}
	if perImage <= 0 || n <= 0 || budget <= 0 {
		return 0
	}
	return int(min(want, budget/(perImage*int64(n))))
}

// activationBudget returns the memory activations may take and where
// that number comes from: train.activation_cache_mb, else half of what
// the kernel reports available (MemAvailable) on the CPU; on a GPU, 0
// unless configured.
func (r *run) activationBudget() (int64, string) {
	if mb := r.cfg.Train.ActivationCacheMB; mb > 0 {
		return int64(mb) << 20, "train.activation_cache_mb"
	}
	if r.at.device.Type != torch.DeviceCPU {
		return 0, fmt.Sprintf("no automatic budget for the memory of %v: set train.activation_cache_mb", r.at.device)
	}
	avail, err := memAvailable("/proc/meminfo")
	if err != nil {
		return 0, fmt.Sprintf("the memory available is unknown (%v): set train.activation_cache_mb", err)
	}
	return avail / 2, fmt.Sprintf("half the memory available (%s)", nn.Bytes(avail))
}

// memAvailable reads MemAvailable, in bytes, from a Linux meminfo file.
func memAvailable(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "MemAvailable:" && fields[2] == "kB" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: MemAvailable: %w", path, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return 0, fmt.Errorf("%s: no MemAvailable line", path)
}

// decideActivations sets how many views stage ps (index i, frozen as
// the model now is) caches at its freeze point, and records why.
func (r *run) decideActivations(plan *Plan, i int, ps *PlanStage) {
	cfg := r.cfg
	n := r.m.FixedPrefix()
	groups := r.m.backboneGroups()
	if cfg.Train.CacheActivations == "off" || n == 0 || n == len(groups) {
		return // nothing to cache, or the whole backbone fixed: Cache's business
	}
	key := fmt.Sprintf("stages[%d].cache_activations", i)
	point := groups[n-1].Name
	switch {
	case cfg.Augment.Mixup > 0 || cfg.Augment.Cutmix > 0:
		r.decide(plan, key, "off", "mixup and cutmix mix images, not their activations", "")
		return
	case r.dp != nil:
		r.decide(plan, key, "off", "each rank of a data-parallel group trains on a share of the images that changes every pass", "")
		return
	}
	shape := r.m.prefixShape(n, int64(cfg.Data.ImageSize))
	perImage := 4 * shape[0] * shape[1] * shape[2] // float32
	images := len(r.d.Train)
	perPass := r.trainLoader.Len()
	passes := (ps.Epochs*ps.StepsPerEpoch + perPass - 1) / perPass
	budget, from := r.activationBudget()
	// The validation images and the train accuracy's are cached too, once:
	// each epoch evaluates them through the layers that train only.
	evalImages := len(r.d.Val) + len(trainSample(cfg.Seed, r.d.Train))
	fixed := perImage * int64(evalImages)
	k := activationViews(budget-fixed, perImage, images, passes, cfg.Augment.Enabled)
	size := fmt.Sprintf("%s activations (%d×%d×%d floats) × %d images", point, shape[0], shape[1], shape[2], images)
	if k == 0 {
		r.decide(plan, key, "off", fmt.Sprintf("one view of %s = %s, with %s of the %d images evaluated every epoch, "+
			"exceeds the budget of %s, %s: %s..%s run every step",
			size, nn.Bytes(perImage*int64(images)), nn.Bytes(fixed), evalImages, nn.Bytes(budget), from, groups[0].Name, point), "")
		return
	}
	ps.ActivationViews = k
	why := fmt.Sprintf("%s: a view per pass over the images", plural.Count(k, "view"))
	switch {
	case !cfg.Augment.Enabled:
		why = "1 view: without augmentation every pass sees the same images"
	case k < passes:
		why = fmt.Sprintf("%d views fit, of the %d passes: pass k trains on view k mod %d", k, passes, k)
	}
	reason := fmt.Sprintf("cache %s activations: %s × %d images × %s = %s, and %s of the %d images evaluated every epoch, "+
		"of a budget of %s (%s); %s", point, plural.Count(k, "view"), images, nn.Bytes(perImage), nn.Bytes(perImage*int64(images)*int64(k)),
		nn.Bytes(fixed), evalImages, nn.Bytes(budget), from, why)
	r.decide(plan, key, strconv.Itoa(k), reason, fmt.Sprintf("stage %s: %s", ps.Name, reason))
}

// activationCache is a stage's cached activations: views[v] holds view
// v of every training image the loader decoded, in the order of the
// training indices (rowOf maps a position there to its row).
type activationCache struct {
	views []*torch.Tensor
	rowOf []int
}

func (c *activationCache) free() {
	for _, v := range c.views {
		v.Free()
	}
}

// cacheActivations runs the fused prefix once over each of stage p's
// views of the training images: view v is what trainLoader serves in the
// stage's pass v.
func (r *run) cacheActivations(ctx context.Context, p stagePlan) (_ *activationCache, err error) {
	loader, err := r.loader(r.d.TrainSet, r.d.Train, viewLoader)
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	c := &activationCache{}
	defer func() {
		if err != nil {
			c.free()
		}
	}()
	// Under the run's autocast, as a training step runs the prefix.
	prefix := func(x *torch.Tensor) (h *torch.Tensor, err error) {
		err = r.at.compute(func() error {
			h, err = r.m.PrefixActivations(x)
			return err
		})
		return h, err
	}
	var first []int
	for v := range p.ActivationViews {
		view, rows, err := r.pass(ctx, loader, p.index*1_000_000+v, prefix)
		if err != nil {
			return nil, fmt.Errorf("caching activations, view %d: %w", v+1, err)
		}
		c.views = append(c.views, view)
		if v == 0 {
			first = rows
		} else if !slices.Equal(rows, first) {
			return nil, fmt.Errorf("caching activations: view %d holds other images than view 1", v+1)
		}
	}
	c.rowOf = rowsOf(r.d.Train, first)
	return c, nil
}

// rowsOf maps each position of indices to its row among rows, the
// indices an in-order loader over them decoded (fewer when some were
// skipped), -1 for a skipped one.
func rowsOf(indices, rows []int) []int {
	rowOf := make([]int, len(indices))
	row := 0
	for k, i := range indices {
		rowOf[k] = -1
		if row < len(rows) && rows[row] == i {
			rowOf[k] = row
			row++
		}
	}
	return rowOf
}
