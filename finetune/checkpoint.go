package finetune

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"

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

// Checkpoint file names in a run folder.
const (
	lastCheckpoint  = "last.safetensors"
	bestCheckpoint  = "best.safetensors"
	deltaCheckpoint = "best-delta.safetensors"
)

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
}

func versions() map[string]string {
	return map[string]string{"finetune": Version, "libtorch": torch.Version(), "go": runtime.Version()}
}

func (m Meta) encode() (map[string]string, error) {
	out := map[string]string{"format": CheckpointFormat, "form": m.Form}
	for k, v := range map[string]any{"config": m.Config, "classes": m.Classes, "normalize": m.Normalize,
		"metrics": m.Metrics, "versions": m.Versions} {
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
	return m, nil
}

// deltaKeys are the state-dict keys that can differ from the pretrained
// weights: the head, every BatchNorm's parameters and statistics, and
// every parameter that trained.
func (tr *trainer) deltaKeys() map[string]bool {
	keys := map[string]bool{}
	for k := range tr.state.Trained {
		keys[k] = true
	}
	_ = nn.Walk(tr.m, func(path string, x nn.Module) error {
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

func (tr *trainer) meta(form string, metrics map[string]float64) Meta {
	return Meta{Form: form, Config: tr.cfg, Classes: tr.d.Classes, Normalize: data.ImageNet,
		Metrics: metrics, Versions: versions()}
}

// writeResume writes last.safetensors: what changed in the model, the
// best weights so far, the optimizer's state and the trainer's, enough to
// continue exactly where the run is.
func (tr *trainer) writeResume() error {
	s := torch.NewScope()
	defer s.Close()
	keys := tr.deltaKeys()
	entries := pick(nn.StateDict(tr.m), keys, "model/")
	if tr.best != nil {
		entries = append(entries, pick(tr.best, keys, "best/")...)
	}
	entries = append(entries, pick(tr.probeStart, keys, "probe/")...)
	md, err := tr.meta("resume", nil).encode()
	if err != nil {
		return err
	}
	if tr.opt != nil {
		st, err := tr.opt.State()
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
	rng, err := tr.gen.State()
	if err != nil {
		return err
	}
	entries = append(entries, nn.Named[*torch.Tensor]{Name: "rng/head", Value: rng})
	b, err := json.Marshal(tr.state)
	if err != nil {
		return err
	}
	md["trainer"] = string(b)
	path := filepath.Join(tr.runDir(), lastCheckpoint)
	if err := nn.WriteSafetensors(path, entries, md); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// resume restores a run from its last.safetensors.
func (tr *trainer) resume(path string) error {
	entries, md, err := readCheckpoint(path)
	if err != nil {
		return err
	}
	meta, err := decodeMeta(path, md)
	if err != nil {
		return err
	}
	if meta.Form != "resume" {
		return fmt.Errorf("%s: a %s checkpoint cannot be resumed from; use %s of the interrupted run", path, meta.Form, lastCheckpoint)
	}
	if err := json.Unmarshal([]byte(md["trainer"]), &tr.state); err != nil {
		return fmt.Errorf("%s: trainer state: %w", path, err)
	}
	// What "auto" stood for was decided on the data before the
	// interruption: keep it.
	tr.state.Auto.apply(&tr.cfg)
	if diff := configDiff(meta.Config, tr.cfg); diff != "" {
		return fmt.Errorf("%s: the run used a different configuration (%s); resume with the same one", path, diff)
	}
	if err := tr.m.SetBNMode(tr.cfg.Train.BatchNorm); err != nil {
		return err
	}
	var model, best, probeStart []nn.Named[*torch.Tensor]
	st := &optim.State{Tensors: map[string]*torch.Tensor{}}
	for _, e := range entries {
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
			if err := tr.gen.SetState(e.Value); err != nil {
				return fmt.Errorf("%s: generator state: %w", path, err)
			}
		}
	}
	if len(probeStart) > 0 {
		// The model still holds the pretrained weights: what the probe's
		// entries leave out.
		if _, err := nn.LoadStateDict(tr.m, probeStart, nn.LoadOptions{AllowMissing: true}); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := tr.keepProbeStart(); err != nil {
			return err
		}
	}
	if len(best) > 0 {
		if _, err := nn.LoadStateDict(tr.m, best, nn.LoadOptions{AllowMissing: true}); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := tr.keepBest(); err != nil {
			return err
		}
	}
	if _, err := nn.LoadStateDict(tr.m, model, nn.LoadOptions{AllowMissing: true}); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if raw, ok := md["optimizer"]; ok {
		if err := json.Unmarshal([]byte(raw), st); err != nil {
			return fmt.Errorf("%s: optimizer state: %w", path, err)
		}
		tr.pendingOptState = st
	}
	tr.info("resuming from %s: stage %d, epoch %d, step %d", path, tr.state.Stage+1, tr.state.Epoch+1, tr.state.StepInEpoch)
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

// writeFinal writes the best model in the configured forms.
func (tr *trainer) writeFinal(res *Result) ([]CheckpointFile, error) {
	metrics := map[string]float64{"val_accuracy": res.Val.Accuracy, "val_loss": res.Val.Loss}
	if res.Test != nil {
		metrics["test_accuracy"], metrics["test_loss"] = res.Test.Accuracy, res.Test.Loss
	}
	var files []CheckpointFile
	form := tr.cfg.Output.Checkpoint
	for _, f := range []struct {
		form, name string
		keys       map[string]bool
	}{{"full", bestCheckpoint, nil}, {"delta", deltaCheckpoint, tr.deltaKeys()}} {
		if form != "both" && form != f.form {
			continue
		}
		md, err := tr.meta(f.form, metrics).encode()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(tr.runDir(), f.name)
		if err := nn.WriteSafetensors(path, pick(nn.StateDict(tr.m), f.keys, ""), md); err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		info, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		files = append(files, CheckpointFile{Path: path, Form: f.form, Bytes: info.Size()})
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
	tr := &trainer{m: m, state: trainState{Trained: trained}}
	delta, err = nn.SafetensorsSize(pick(sd, tr.deltaKeys(), ""), nil)
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
// mode. A delta checkpoint needs the pretrained weights it was made from
// (found through opts.Hub, as for training, or opts.Weights).
func LoadCheckpoint(ctx context.Context, path string, opts LoadOptions) (*Model, Meta, error) {
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
			nn.Free(m)
			return nil, meta, fmt.Errorf("%s: %w", path, err)
		}
	case "delta", "resume":
		if m, err = buildModel(ctx, cfg, int64(len(meta.Classes)), hub, func(string, ...any) {}); err != nil {
			return nil, meta, fmt.Errorf("%s is a delta checkpoint over %s: %w", path, cfg.Model.Weights, err)
		}
		var own []nn.Named[*torch.Tensor]
		for _, e := range entries {
			if name, ok := strings.CutPrefix(e.Name, "best/"); ok || meta.Form == "delta" {
				if !ok {
					name = e.Name
				}
				own = append(own, nn.Named[*torch.Tensor]{Name: name, Value: e.Value})
			}
		}
		if _, err = nn.LoadStateDict(m, own, nn.LoadOptions{AllowMissing: true}); err != nil {
			nn.Free(m)
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
