package finetune

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/finetune-go/finetune/internal/printable"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/finetune-go/finetune/vision/models"
)

// checkChannels checks a per-channel key: empty (the weights' own), or
// three finite numbers, each positive when positive is set.
func checkChannels(key string, v []float64, positive bool) error {
	if len(v) == 0 {
		return nil
	}
	if len(v) != 3 {
		return fmt.Errorf("%s: want 3 values (R, G, B), got %d", key, len(v))
	}
	for i, x := range v {
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			return fmt.Errorf("%s: value %d is %v: want a finite number", key, i+1, x)
		case positive && !(x > 0):
			return fmt.Errorf("%s: value %d is %v: want a positive number", key, i+1, x)
		}
	}
	return nil
}

// normalization decides the mean and standard deviation cfg's images
// are normalised with: data.mean and data.std when set, else the
// weights' own. It returns the reason when either is not configured
// ("" when both are).
func normalization(cfg Config) (data.Normalize, string, error) {
	own, why, err := weightsNormalization(cfg.Model.Weights)
	if err != nil {
		return data.Normalize{}, "", err
	}
	n := own
	if len(cfg.Data.Mean) == 3 {
		n.Mean = channels(cfg.Data.Mean)
	}
	if len(cfg.Data.Std) == 3 {
		n.Std = channels(cfg.Data.Std)
	}
	if len(cfg.Data.Mean) == 3 && len(cfg.Data.Std) == 3 {
		why = ""
	}
	return n, why, nil
}

func channels(v []float64) [3]float32 {
	return [3]float32{float32(v[0]), float32(v[1]), float32(v[2])}
}

// weightsNormalization returns the normalisation the weights spec
// names were trained with, and how that is known: torchvision's
// published weights carry ImageNet's; a safetensors file may record its
// own (a finetune checkpoint's "normalize", or "mean" and "std" in its
// metadata); anything else gets ImageNet's, saying so.
func weightsNormalization(spec string) (data.Normalize, string, error) {
	const set = "; set data.mean and data.std if they were trained with others"
	switch {
	case spec == "none":
		return data.ImageNet, "ImageNet's: no pretrained weights (model.weights: none) to take them from", nil
	case models.IsWeightsName(spec):
		return data.ImageNet, "ImageNet's: torchvision's published weights were trained with them", nil
	case !strings.EqualFold(filepath.Ext(spec), ".safetensors"):
		return data.ImageNet, fmt.Sprintf("ImageNet's: %s records no normalisation (a .pth file cannot)%s", printable.Name(spec), set), nil
	}
	md, err := readHeaderMetadata(spec)
	if err != nil {
		return data.Normalize{}, "", fmt.Errorf("model.weights: %w", err)
	}
	if raw, ok := md["normalize"]; ok {
		var n data.Normalize
		if err := json.Unmarshal([]byte(raw), &n); err != nil {
			return n, "", fmt.Errorf("model.weights: %s: metadata \"normalize\": %w", spec, err)
		}
		if err := checkNormalize(spec, "normalize", n); err != nil {
			return n, "", fmt.Errorf("model.weights: %w", err)
		}
		return n, fmt.Sprintf("those %s records (metadata \"normalize\")", printable.Name(spec)), nil
	}
	rawMean, okMean := md["mean"]
	rawStd, okStd := md["std"]
	if !okMean && !okStd {
		return data.ImageNet, fmt.Sprintf("ImageNet's: %s records no \"mean\" and \"std\" in its metadata%s", printable.Name(spec), set), nil
	}
	var n data.Normalize
	for _, c := range []struct {
		key string
		raw string
		to  *[3]float32
	}{{"mean", rawMean, &n.Mean}, {"std", rawStd, &n.Std}} {
		v, err := parseChannels(c.raw)
		if err == nil {
			err = checkChannels(c.key, v, c.key == "std")
		}
		if err == nil && len(v) == 0 {
			err = fmt.Errorf("missing beside %q", map[string]string{"mean": "std", "std": "mean"}[c.key])
		}
		if err != nil {
			return n, "", fmt.Errorf("model.weights: %s: metadata %q: %w", spec, c.key, err)
		}
		*c.to = channels(v)
	}
	return n, fmt.Sprintf("those %s records (metadata \"mean\" and \"std\")", printable.Name(spec)), nil
}

// parseChannels parses a list of numbers as JSON ("[0.5, 0.5, 0.5]") or
// comma separated ("0.5,0.5,0.5").
func parseChannels(s string) ([]float64, error) {
	s = strings.Trim(strings.TrimSpace(s), "[]")
	if s == "" {
		return nil, nil
	}
	var out []float64
	for _, part := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", strings.TrimSpace(part))
		}
		out = append(out, x)
	}
	return out, nil
}

// checkNormalize checks a normalisation read from the metadata key of
// the file at path.
func checkNormalize(path, key string, n data.Normalize) error {
	for c := range 3 {
		m, s := float64(n.Mean[c]), float64(n.Std[c])
		if math.IsNaN(m) || math.IsInf(m, 0) || !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("%s: metadata %q: channel %d has mean %v and std %v: want finite numbers, std positive", path, key, c+1, m, s)
		}
	}
	return nil
}

// decideData records in plan how the run's data are prepared: the
// normalisation, and where it comes from for the keys not set; the
// evaluation resize, and why when data.resize is 0.
func (r *run) decideData(plan *Plan) {
	plan.EvalResize = r.d.EvalResize
	if r.d.resizeWhy != "" {
		r.decide(plan, "data.resize", fmt.Sprint(r.d.EvalResize), r.d.resizeWhy, "")
	}
	n := r.d.Normalize
	plan.Normalize = n
	var said []string
	for _, k := range []struct {
		key string
		set bool
		v   [3]float32
	}{{"data.mean", len(r.cfg.Data.Mean) == 3, n.Mean}, {"data.std", len(r.cfg.Data.Std) == 3, n.Std}} {
		if !k.set {
			value := channelString(k.v)
			plan.Decisions = append(plan.Decisions, Decision{Key: k.key, Value: value, Reason: r.d.normalizeWhy})
			said = append(said, k.key+" "+value)
		}
	}
	if said != nil {
		r.info("%s: %s", strings.Join(said, " and "), r.d.normalizeWhy)
	}
}

// normalize is the plan's normalisation; plans written before it was
// recorded used ImageNet's.
func (p *Plan) normalize() data.Normalize {
	if p.Normalize == (data.Normalize{}) {
		return data.ImageNet
	}
	return p.Normalize
}

// evalResize is the plan's evaluation resize; plans written before it
// was recorded used cfg's.
func (p *Plan) evalResize(cfg Config) int {
	if p.EvalResize > 0 {
		return p.EvalResize
	}
	return cfg.EvalResize()
}

// evalResize is the evaluation resize of the run meta describes.
func (m Meta) evalResize() int {
	if m.Plan != nil {
		return m.Plan.evalResize(m.Config)
	}
	return m.Config.EvalResize()
}

// channelString writes v as the keys are written: "0.5,0.5,0.5".
func channelString(v [3]float32) string {
	parts := make([]string, 3)
	for i, x := range v {
		parts[i] = strconv.FormatFloat(float64(x), 'g', -1, 32)
	}
	return strings.Join(parts, ",")
}
