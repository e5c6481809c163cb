package finetune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"

	"github.com/finetune-go/finetune/internal/printable"
	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/torch/optim"
	"github.com/finetune-go/finetune/vision/data"
	"github.com/finetune-go/finetune/vision/models"
)

// Version is finetune's version, recorded in every checkpoint.
const Version = "0.1.0"

// CheckpointFormat is the value of a checkpoint's "format" metadata.
// Format 2 writes the configuration under its keys; checkpoints of
// format 1 still load.
const CheckpointFormat = "finetune-checkpoint/2"

// lastCheckpoint is the resume checkpoint's file name in a run folder.
const lastCheckpoint = CheckpointLast + ".safetensors"

// CheckpointFile is a written checkpoint.
type CheckpointFile struct {
	Path  string `json:"path"`
	Form  string `json:"form"` // full or delta
	Bytes int64  `json:"bytes"`
}

// Meta is what a checkpoint says about its model, beside the weights.
type Meta struct {
	Form      string             `json:"form"`
	Config    Config             `json:"config"`
	Classes   []string           `json:"classes"`
	Normalize data.Normalize     `json:"normalize"`
	Metrics   map[string]float64 `json:"metrics,omitempty"`
	Versions  map[string]string  `json:"versions"`
	// Plan is what the run trained (nil in checkpoints of older
	// versions).
	Plan *Plan `json:"plan,omitempty"`
	// Base is where the pretrained weights a delta (or resume)
	// checkpoint applies to were, when model.weights is a file.
	Base *BaseWeights `json:"base,omitempty"`
}

// BaseWeights is where the pretrained weights of a checkpoint were when
// it was written: relative to the checkpoint's folder (so a run folder
// moved together with its weights still finds them), absolute, and what
// they held.
type BaseWeights struct {
	Relative string `json:"relative"`
	WeightsFile
}

func versions() map[string]string {
	return map[string]string{"finetune": Version, "libtorch": torch.Version(), "go": runtime.Version()}
}

func (m Meta) encode() (map[string]string, error) {
	out := map[string]string{"format": CheckpointFormat, "form": m.Form}
	fields := map[string]any{"config": m.Config, "classes": m.Classes, "normalize": m.Normalize,
		"metrics": m.Metrics, "versions": m.Versions}
	if m.Plan != nil {
		fields["plan"] = m.Plan
	}
	if m.Base != nil {
		fields["base"] = m.Base
	}
	for k, v := range fields {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		out[k] = string(b)
	}
	return out, nil
}

func decodeMeta(path string, md map[string]string) (Meta, error) {
	var m Meta
	if md["format"] != CheckpointFormat && md["format"] != checkpointFormat1 {
		return m, fmt.Errorf("%s: not a finetune checkpoint (format %q, want %q)", path, md["format"], CheckpointFormat)
	}
	m.Form = md["form"]
	var err error
	if m.Config, err = decodeMetaConfig(md["format"], md["config"]); err != nil {
		return m, fmt.Errorf("%s: metadata \"config\": %w", path, err)
	}
	for k, v := range map[string]any{"classes": &m.Classes, "normalize": &m.Normalize,
		"metrics": &m.Metrics, "versions": &m.Versions} {
		if err := json.Unmarshal([]byte(md[k]), v); err != nil {
			return m, fmt.Errorf("%s: metadata %q: %w", path, k, err)
		}
	}
	if len(m.Classes) == 0 {
		return m, fmt.Errorf("%s: metadata \"classes\" is empty: the checkpoint names no class to predict", path)
	}
	if err := checkNormalize(path, "normalize", m.Normalize); err != nil {
		return m, err
	}
	for k, v := range map[string]any{"plan": &m.Plan, "base": &m.Base} {
		if raw, ok := md[k]; ok {
			if err := json.Unmarshal([]byte(raw), v); err != nil {
				return m, fmt.Errorf("%s: metadata %q: %w", path, k, err)
			}
		}
	}
	return m, nil
}

// deltaKeys are the state-dict keys of m that can differ from the
// pretrained weights: the head, every BatchNorm's parameters and
// statistics, and every parameter that trained.
func deltaKeys(m *Model, trained map[string]bool) map[string]bool {
	keys := map[string]bool{}
	for k := range trained {
		keys[k] = true
	}
	_ = nn.Walk(m, func(path string, x nn.Module) error {
		_, isBN := x.(*nn.BatchNorm)
		if !isBN && !strings.HasPrefix(path, "head") {
			return nil
		}
		for _, e := range nn.StateDict(x) {
			keys[join(path, e.Name)] = true
		}
		return nil
	})
	return keys
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func pick(entries []nn.Named[*torch.Tensor], keep map[string]bool, prefix string) []nn.Named[*torch.Tensor] {
	var out []nn.Named[*torch.Tensor]
	for _, e := range entries {
		if keep == nil || keep[e.Name] {
			out = append(out, nn.Named[*torch.Tensor]{Name: prefix + e.Name, Value: e.Value})
		}
	}
	return out
}

// meta describes the model for a checkpoint of form written to path.
func (lp *loop) meta(form, path string, metrics map[string]float64) (Meta, error) {
	m := Meta{Form: form, Config: lp.cfg, Classes: lp.d.Classes, Normalize: lp.plan.normalize(),
		Metrics: metrics, Versions: versions(), Plan: lp.plan}
	if w := lp.plan.Weights; w != nil && form != "full" {
		dir, err := filepath.Abs(filepath.Dir(path))
		if err != nil {
			return m, err
		}
		rel, err := filepath.Rel(dir, w.Path)
		if err != nil {
			rel = ""
		}
		m.Base = &BaseWeights{Relative: filepath.ToSlash(rel), WeightsFile: *w}
	}
	return m, nil
}

// writeResume records last.safetensors: what changed in the model, the
// best weights so far, the optimizer's state and the loop's, enough to
// continue exactly where the run is.
func (lp *loop) writeResume() error {
	lp.state.Elapsed = lp.before + lp.since()
	return lp.ev.record(Event{Kind: EventCheckpoint, Checkpoint: &CheckpointWrite{Name: CheckpointLast, Write: func(path string) error {
		if err := lp.writeResumeTo(path); err != nil {
			return err
		}
		lp.lastPath = path
		return nil
	}}})
}

func (lp *loop) writeResumeTo(path string) error {
	s := torch.NewScope()
	defer s.Close()
	keys := deltaKeys(lp.m, lp.state.Trained)
	entries := pick(nn.StateDict(lp.m), keys, "model/")
	if lp.best != nil {
		entries = append(entries, pick(lp.best, keys, "best/")...)
	}
	entries = append(entries, pick(lp.probeStart, keys, "probe/")...)
	meta, err := lp.meta("resume", path, nil)
	if err != nil {
		return err
	}
	md, err := meta.encode()
	if err != nil {
		return err
	}
	if lp.opt != nil {
		st, err := lp.opt.State()
		if err != nil {
			return fmt.Errorf("checkpoint: optimizer: %w", err)
		}
		// The optimizer's tensors come from a map: give the file a stable
		// order.
		for _, name := range slices.Sorted(maps.Keys(st.Tensors)) {
			entries = append(entries, nn.Named[*torch.Tensor]{Name: "optim/" + name, Value: st.Tensors[name]})
		}
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		md["optimizer"] = string(b)
	}
	rng, err := lp.gen.State()
	if err != nil {
		return err
	}
	entries = append(entries, nn.Named[*torch.Tensor]{Name: "rng/head", Value: rng})
	b, err := json.Marshal(lp.state)
	if err != nil {
		return err
	}
	md["trainer"] = string(b)
	if err := nn.WriteSafetensors(path, entries, md); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// lastGood names the last resume checkpoint recorded, or says that there
// is none, so that an error never points at a file never written.
func (lp *loop) lastGood() string {
	if lp.lastPath == "" {
		return "no checkpoint was written yet"
	}
	return "the last good checkpoint: " + lp.lastPath
}

// resumePoint is a resume checkpoint, read.
type resumePoint struct {
	path    string
	entries []nn.Named[*torch.Tensor]
	md      map[string]string
	plan    *Plan
	state   trainState
}

// readResume reads the resume checkpoint at path and checks that it
// continues cfg.
func readResume(path string, cfg Config) (*resumePoint, error) {
	entries, md, err := readCheckpoint(path)
	if err != nil {
		return nil, err
	}
	meta, err := decodeMeta(path, md)
	if err != nil {
		return nil, err
	}
	if meta.Form != "resume" {
		return nil, fmt.Errorf("%s: a %s checkpoint cannot be resumed from; use %s of the interrupted run", path, meta.Form, lastCheckpoint)
	}
	if meta.Plan == nil {
		return nil, fmt.Errorf("%s: the checkpoint holds no plan (finetune %s wrote it); it cannot be resumed", path, meta.Versions["finetune"])
	}
	if diff := configDiff(meta.Config, cfg); diff != "" {
		return nil, fmt.Errorf("%s: the run used a different configuration (%s); resume with the same one", path, diff)
	}
	pt := &resumePoint{path: path, entries: entries, md: md, plan: meta.Plan}
	if pt.state, err = decodeTrainState(path, md, meta.Plan); err != nil {
		return nil, err
	}
	return pt, nil
}

// decodeTrainState reads the loop's state from a resume checkpoint's
// metadata and checks it against the plan it continues: a state no run
// could have written (a stage the plan lacks, a negative epoch, more
// steps than an epoch has) is an error naming the field and the file,
// never a run that resumes somewhere meaningless.
func decodeTrainState(path string, md map[string]string, plan *Plan) (trainState, error) {
	var st trainState
	if err := json.Unmarshal([]byte(md["trainer"]), &st); err != nil {
		return st, fmt.Errorf("%s: metadata \"trainer\": %w", path, err)
	}
	if st.Trained == nil {
		st.Trained = map[string]bool{}
	}
	bad := func(field string, v int, want string) error {
		return fmt.Errorf("%s: metadata \"trainer\": %s %d is not %s: the checkpoint is damaged or was edited", path, field, v, want)
	}
	if n := len(plan.Stages); st.Stage < 0 || st.Stage >= n {
		return st, bad("stage", st.Stage, fmt.Sprintf("a stage of the plan (0 to %d)", n-1))
	}
	p := plan.Stages[st.Stage]
	if p.Epochs <= 0 || p.StepsPerEpoch <= 0 {
		return st, fmt.Errorf("%s: metadata \"plan\": stage %s has %d epochs of %d steps: the checkpoint is damaged or was edited",
			path, p.Name, p.Epochs, p.StepsPerEpoch)
	}
	total := 0
	for _, s := range plan.Stages {
		total += s.Epochs
	}
	switch {
	case st.Epoch < 0 || st.Epoch > p.Epochs:
		return st, bad("epoch", st.Epoch, fmt.Sprintf("between 0 and stage %s's %d epochs", p.Name, p.Epochs))
	case st.StepInEpoch < 0 || st.StepInEpoch > p.StepsPerEpoch:
		return st, bad("step_in_epoch", st.StepInEpoch, fmt.Sprintf("between 0 and the %d steps of an epoch", p.StepsPerEpoch))
	case st.Step < 0 || st.Step > p.Epochs*p.StepsPerEpoch:
		return st, bad("step", st.Step, fmt.Sprintf("between 0 and stage %s's %d steps", p.Name, p.Epochs*p.StepsPerEpoch))
	case st.SinceBest < 0:
		return st, bad("since_best", st.SinceBest, "0 or more")
	case len(st.History) > total:
		return st, bad("history's length", len(st.History), fmt.Sprintf("at most the plan's %d epochs", total))
	}
	return st, nil
}

// VerifyCheckpoint reads the whole checkpoint at path, as loading it
// would, without the pretrained weights a delta checkpoint builds on:
// its metadata, every tensor (a truncated file is an error), each
// tensor's name, shape and values against the model the metadata
// describes (NaN or infinite weights are an error), and a resume
// checkpoint's training state against its plan.
func VerifyCheckpoint(path string) (_ Meta, err error) {
	defer printable.Escape(&err)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := torch.NewScope()
	defer s.Close()
	entries, md, err := readCheckpoint(path)
	if err != nil {
		return Meta{}, err
	}
	meta, err := decodeMeta(path, md)
	if err != nil {
		return meta, err
	}
	groups := map[string][]nn.Named[*torch.Tensor]{}
	switch meta.Form {
	case "full", "delta":
		groups[""] = entries
	case "resume":
		if meta.Plan == nil {
			return meta, fmt.Errorf("%s: the checkpoint holds no plan (finetune %s wrote it); it cannot be resumed", path, meta.Versions["finetune"])
		}
		if _, err := decodeTrainState(path, md, meta.Plan); err != nil {
			return meta, err
		}
		for _, e := range entries {
			group, name, ok := strings.Cut(e.Name, "/")
			if ok && (group == "model" || group == "best" || group == "probe") {
				groups[group] = append(groups[group], nn.Named[*torch.Tensor]{Name: name, Value: e.Value})
			}
		}
	default:
		return meta, fmt.Errorf("%s: unknown checkpoint form %q", path, meta.Form)
	}
	cfg := meta.Config
	m, err := NewModel(cfg.Model.Arch, cfg.Model.Head, int64(len(meta.Classes)), cfg.Data.ImageSize)
	if err != nil {
		return meta, fmt.Errorf("%s: %w", path, err)
	}
	defer m.Close()
	for _, group := range slices.Sorted(maps.Keys(groups)) {
		if _, err := nn.LoadStateDict(m, groups[group], nn.LoadOptions{AllowMissing: meta.Form != "full"}); err != nil {
			if group != "" {
				return meta, fmt.Errorf("%s: %s/: %w", path, group, err)
			}
			return meta, fmt.Errorf("%s: %w", path, err)
		}
	}
	return meta, nil
}

// restore puts the model, the best and probe weights, the generator and
// the loop's state where the resume checkpoint left them.
func (lp *loop) restore(pt *resumePoint) error {
	path := pt.path
	lp.state = pt.state
	lp.before = pt.state.Elapsed
	if err := lp.m.SetBNMode(lp.plan.BatchNorm); err != nil {
		return err
	}
	var model, best, probeStart []nn.Named[*torch.Tensor]
	st := &optim.State{Tensors: map[string]*torch.Tensor{}}
	for _, e := range pt.entries {
		switch name := e.Name; {
		case strings.HasPrefix(name, "model/"):
			model = append(model, nn.Named[*torch.Tensor]{Name: strings.TrimPrefix(name, "model/"), Value: e.Value})
		case strings.HasPrefix(name, "best/"):
			best = append(best, nn.Named[*torch.Tensor]{Name: strings.TrimPrefix(name, "best/"), Value: e.Value})
		case strings.HasPrefix(name, "probe/"):
			probeStart = append(probeStart, nn.Named[*torch.Tensor]{Name: strings.TrimPrefix(name, "probe/"), Value: e.Value})
		case strings.HasPrefix(name, "optim/"):
			st.Tensors[strings.TrimPrefix(name, "optim/")] = e.Value.Keep()
		case name == "rng/head":
			if err := lp.gen.SetState(e.Value); err != nil {
				return fmt.Errorf("%s: generator state: %w", path, err)
			}
		}
	}
	if len(probeStart) > 0 {
		// The model still holds the pretrained weights: what the probe's
		// entries leave out.
		if _, err := nn.LoadStateDict(lp.m, probeStart, nn.LoadOptions{AllowMissing: true}); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		var err error
		if lp.probeStart, err = cloneState(lp.m); err != nil {
			return err
		}
	}
	if len(best) > 0 {
		if _, err := nn.LoadStateDict(lp.m, best, nn.LoadOptions{AllowMissing: true}); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := lp.keepBest(); err != nil {
			return err
		}
	}
	if _, err := nn.LoadStateDict(lp.m, model, nn.LoadOptions{AllowMissing: true}); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if raw, ok := pt.md["optimizer"]; ok {
		if err := json.Unmarshal([]byte(raw), st); err != nil {
			return fmt.Errorf("%s: optimizer state: %w", path, err)
		}
		lp.pendingOptState = st
	}
	lp.info("resuming from %s: stage %d, epoch %d, step %d", path, lp.state.Stage+1, lp.state.Epoch+1, lp.state.StepInEpoch)
	return nil
}

// configDiff names the first key whose value differs between a and b,
// ignoring where output goes.
func configDiff(a, b Config) string {
	a.Output, b.Output = OutputConfig{}, OutputConfig{}
	var ka, kb []Key
	walkKeys(reflect.ValueOf(a), "", func(k Key) { ka = append(ka, k) })
	walkKeys(reflect.ValueOf(b), "", func(k Key) { kb = append(kb, k) })
	for i := range ka {
		if fmt.Sprint(ka[i].Default) != fmt.Sprint(kb[i].Default) {
			return fmt.Sprintf("%s was %v, now %v", ka[i].Name, ka[i].Default, kb[i].Default)
		}
	}
	return ""
}

func readCheckpoint(path string) ([]nn.Named[*torch.Tensor], map[string]string, error) {
	entries, md, err := nn.ReadSafetensors(path)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	return entries, md, nil
}

// writeFinal records the model the run ends with in the configured
// forms and returns the files the Recorder wrote.
func (lp *loop) writeFinal(res *Result) ([]CheckpointFile, error) {
	metrics := res.Meta.Metrics
	var files []CheckpointFile
	form := lp.cfg.Output.Checkpoint
	for _, f := range []struct {
		form, name string
		keys       map[string]bool
	}{{"full", CheckpointBest, nil}, {"delta", CheckpointBestDelta, deltaKeys(lp.m, lp.state.Trained)}} {
		if form != "both" && form != f.form {
			continue
		}
		write := func(path string) error {
			meta, err := lp.meta(f.form, path, metrics)
			if err != nil {
				return err
			}
			md, err := meta.encode()
			if err != nil {
				return err
			}
			if err := nn.WriteSafetensors(path, pick(nn.StateDict(lp.m), f.keys, ""), md); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
			info, err := os.Stat(path)
			if err != nil {
				return err
			}
			files = append(files, CheckpointFile{Path: path, Form: f.form, Bytes: info.Size()})
			return nil
		}
		if err := lp.ev.record(Event{Kind: EventCheckpoint, Checkpoint: &CheckpointWrite{Name: f.name, Write: write}}); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// CheckpointSizes returns the sizes the full and the delta checkpoint of
// m would have, where trained names the backbone parameters that train.
func CheckpointSizes(m *Model, trained map[string]bool) (full, delta int64, err error) {
	sd := nn.StateDict(m)
	if full, err = nn.SafetensorsSize(sd, nil); err != nil {
		return 0, 0, err
	}
	delta, err = nn.SafetensorsSize(pick(sd, deltaKeys(m, trained), ""), nil)
	return full, delta, err
}

// LoadOptions say where LoadCheckpoint finds what a checkpoint does not
// hold; the zero value is valid.
type LoadOptions struct {
	// Hub finds named pretrained weights; nil uses torch hub's cache.
	Hub *models.Hub
	// Weights, when set, is the pretrained weights file (or name) a
	// delta checkpoint is applied to, instead of the one it records.
	Weights string
}

// LoadCheckpoint rebuilds the model a checkpoint holds, in evaluation
// mode: a resume checkpoint (last) gives the weights of its last step, the
// others the weights the run ended with. A delta (or resume) checkpoint
// needs the pretrained weights it was made from: named weights come
// through opts.Hub, as for training; a file is opts.Weights (checked
// against the hash the checkpoint records), else the file at the path
// recorded relative to the checkpoint's folder, else at its recorded
// absolute path.
func LoadCheckpoint(ctx context.Context, path string, opts LoadOptions) (_ *Model, _ Meta, err error) {
	defer printable.Escape(&err)
	hub := opts.Hub
	entries, md, err := readCheckpoint(path)
	if err != nil {
		return nil, Meta{}, err
	}
	meta, err := decodeMeta(path, md)
	if err != nil {
		return nil, meta, err
	}
	cfg := meta.Config
	var m *Model
	switch meta.Form {
	case "full":
		torch.ManualSeed(cfg.Seed)
		if m, err = NewModel(cfg.Model.Arch, cfg.Model.Head, int64(len(meta.Classes)), cfg.Data.ImageSize); err != nil {
			return nil, meta, fmt.Errorf("%s: %w", path, err)
		}
		if _, err = nn.LoadStateDict(m, entries, nn.LoadOptions{}); err != nil {
			m.Close()
			return nil, meta, fmt.Errorf("%s: %w", path, err)
		}
	case "delta", "resume":
		if meta.Form == "resume" && meta.Plan != nil {
			if _, err := decodeTrainState(path, md, meta.Plan); err != nil {
				return nil, meta, err
			}
		}
		if cfg.Model.Weights, err = findBase(path, meta, opts.Weights); err != nil {
			return nil, meta, err
		}
		if m, err = buildModel(ctx, cfg, int64(len(meta.Classes)), hub, func(string, ...any) {}); err != nil {
			return nil, meta, fmt.Errorf("%s is a delta checkpoint over %s: %w", path, cfg.Model.Weights, err)
		}
		var own []nn.Named[*torch.Tensor]
		for _, e := range entries {
			if name, ok := strings.CutPrefix(e.Name, "model/"); ok || meta.Form == "delta" {
				if !ok {
					name = e.Name
				}
				own = append(own, nn.Named[*torch.Tensor]{Name: name, Value: e.Value})
			}
		}
		if _, err = nn.LoadStateDict(m, own, nn.LoadOptions{AllowMissing: true}); err != nil {
			m.Close()
			return nil, meta, fmt.Errorf("%s: %w", path, err)
		}
	default:
		return nil, meta, fmt.Errorf("%s: unknown checkpoint form %q", path, meta.Form)
	}
	if err := m.SetBNMode(ProvisionalBN(cfg)); err != nil {
		return nil, meta, err
	}
	m.Train(false)
	return m, meta, nil
}

// findBase returns the pretrained weights a delta checkpoint at path
// applies to (see LoadCheckpoint).
func findBase(path string, meta Meta, override string) (string, error) {
	b := meta.Base
	if b == nil || override != "" && models.IsWeightsName(override) {
		if override != "" {
			return override, nil
		}
		return meta.Config.Model.Weights, nil
	}
	if override != "" {
		sum, err := fileSHA256(override)
		if err != nil {
			return "", fmt.Errorf("%s: weights: %w", path, err)
		}
		if sum != b.SHA256 {
			return "", fmt.Errorf("%s: weights %s (sha256 %s) are not those the checkpoint was made from, %s (sha256 %s)",
				path, override, sum, b.Path, b.SHA256)
		}
		return override, nil
	}
	var candidates, tried []string
	if b.Relative != "" {
		candidates = append(candidates, filepath.Join(filepath.Dir(path), filepath.FromSlash(b.Relative)))
	}
	candidates = append(candidates, b.Path)
	for _, c := range candidates {
		sum, err := fileSHA256(c)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			tried = append(tried, c+" (missing)")
		case err != nil:
			tried = append(tried, fmt.Sprintf("%s (%v)", c, err))
		case sum != b.SHA256:
			tried = append(tried, c+" (other contents)")
		default:
			return c, nil
		}
	}
	return "", fmt.Errorf("%s: the pretrained weights it applies to (sha256 %s) are not found: tried %s; give their path with --model.weights (LoadOptions.Weights in Go)",
		path, b.SHA256, strings.Join(tried, ", "))
}
