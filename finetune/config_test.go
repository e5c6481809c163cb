package finetune

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/finetune-go/finetune/vision/data"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// keyNames are the names of Keys.
func keyNames() []string {
	var names []string
	for _, k := range Keys() {
		names = append(names, k.Name)
	}
	return names
}

// documentKeys lists the dotted names of the leaves of a YAML (or JSON)
// document's mappings, in order.
func documentKeys(t *testing.T, doc string) []string {
	t.Helper()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(doc), &n))
	var names []string
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			name := dotted(prefix, n.Content[i].Value)
			if v := n.Content[i+1]; v.Kind == yaml.MappingNode {
				walk(name, v)
			} else {
				names = append(names, name)
			}
		}
	}
	walk("", n.Content[0])
	return names
}

// custom is a configuration far from the defaults, with strings YAML
// would read as something else unquoted.
func custom() Config {
	c := Defaults()
	c.Data.Train = "my data/train: #1"
	c.Data.Val = "null"
	c.Data.Test = "42"
	c.Data.ValSplit = 1.0 / 3
	c.Model.Weights = "true"
	c.Model.Head.Hidden = []int{512, 256}
	c.Data.Mean, c.Data.Std = []float64{0.5, 0.25, 0.125}, []float64{0.2, 0.3, 0.4}
	c.Augment.Scale = [2]float64{0.08, 1}
	c.Augment.Hue = 1e-5
	c.Train.LR = 3e-4
	c.Train.Nesterov = true
	c.Train.EarlyStopping.MinDelta = 0
	c.Stages = []Stage{{"warm", 2, "all", 0.1}, {"deep", 4, "layer2", 0.01}, {"all", 1, "none", 1}}
	c.Output.Dir = "runs/ä b\t\"c\""
	c.Seed = math.MaxUint64
	c.Device = "cuda:1"
	return c
}

func TestConfigEncodingsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{{"defaults", Defaults()}, {"custom", custom()}} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.cfg)
			require.NoError(t, err)
			for _, enc := range []struct{ name, doc string }{
				{"ConfigYAML", ConfigYAML(tc.cfg)},
				{"json", string(b)},
			} {
				// From the zero Config, the result is tc.cfg only if every
				// key was written.
				got, err := ParseConfig([]byte(enc.doc), Config{})
				require.NoError(t, err, enc.doc)
				require.Equal(t, tc.cfg, got, enc.name)
				require.Equal(t, keyNames(), documentKeys(t, enc.doc), "%s holds every key, by its name", enc.name)
			}
		})
	}
}

func TestDefaultConfigYAML(t *testing.T) {
	doc := DefaultConfigYAML()
	require.Equal(t, keyNames(), documentKeys(t, doc))
	got, err := ParseConfig([]byte(doc), Config{})
	require.NoError(t, err)
	require.Equal(t, Defaults(), got)
	require.Contains(t, doc, "  # learning rate of the head (the backbone's is lr times the stage's\n  # backbone_lr_mult); the default suits a head that starts as the probe, a\n  # random one wants about 1e-3\n  lr: 0.0001\n")
}

func TestParseConfigOverBase(t *testing.T) {
	base := custom()
	got, err := ParseConfig([]byte("train:\n  lr: 5e-1\nstages: head:1:all\nmodel:\n  head:\n    hidden: [8]\n"), base)
	require.NoError(t, err)
	want := custom()
	want.Train.LR = 0.5
	want.Stages = []Stage{{"head", 1, "all", 0.1}}
	want.Model.Head.Hidden = []int{8}
	require.Equal(t, want, got, "lists are replaced, other keys keep base's values")
	require.Equal(t, custom(), base, "base is not changed")

	got, err = ParseConfig([]byte("data:\n  val:\n  val_split: null\n"), base)
	require.NoError(t, err)
	require.Equal(t, "", got.Data.Val, "null clears a key")
	require.Equal(t, 0.0, got.Data.ValSplit)

	got, err = ParseConfig(nil, base)
	require.NoError(t, err)
	require.Equal(t, base, got)
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, msg string }{
		{"unknown key", "data:\n  train: x\n  batch_sise: 3\n", `line 3: unknown config key "data.batch_sise" (did you mean "data.batch_size"?)`},
		{"unknown section", "data:\n  train: x\nmodle:\n  arch: resnet18\n", `line 3: unknown config key "modle" (did you mean "model"?)`},
		{"unknown stage key", "stages:\n  - name: a\n    epochs: 2\n    freeze: all\n    epoch: 3\n", `line 5: unknown config key "stages[0].epoch" (did you mean "stages[0].epochs"?)`},
		{"unknown far off", "colour: red\n", `line 1: unknown config key "colour"`},
		{"set twice", "train:\n  lr: 1\n  lr: 2\n", "line 3: train.lr: set twice (first on line 2)"},
		{"not an integer", "data:\n  batch_size: many\n", `line 2: data.batch_size: "many" is not an integer`},
		{"fraction for an integer", "data:\n  batch_size: 1.5\n", `line 2: data.batch_size: "1.5" is not an integer`},
		{"negative seed", "seed: -1\n", `line 1: seed: "-1" is not an integer of 0 or more`},
		{"not a number", "train:\n  lr: fast\n", `line 2: train.lr: "fast" is not a number`},
		{"quoted number", "train:\n  lr: \"0.1\"\n", `line 2: train.lr: "0.1" is not a number`},
		{"not a bool", "probe: maybe\n", `line 1: probe: "maybe" is not true or false`},
		{"list for a string", "device: [cpu]\n", "line 1: device: a list is not a string"},
		{"scalar for a section", "train: 3\n", `line 1: train: "3" is not a mapping of keys`},
		{"list length", "augment:\n  scale: [0.1, 0.5, 1]\n", "line 2: augment.scale: a list is not a list of 2 values"},
		{"list item", "model:\n  head:\n    hidden: [512, wide]\n", `line 3: model.head.hidden[1]: "wide" is not an integer`},
		{"bad stages", "stages: head:x:all\n", `line 1: stages: "head:x:all": epochs "x" is not an integer`},
		{"not a mapping", "- a\n", "line 1: the configuration is a list, not a mapping of keys"},
		{"syntax", "data:\n  train: [x\n", "line 2: did not find expected ',' or ']'"},
		{"indentation", "train:\n  lr: 0.1\n   momentum: 2\n", "line 3: mapping values are not allowed in this context"},
		{"block in flow", "data:\n  train: x\n  val: {a: 1\n", "line 3: did not find expected ',' or '}'"},
		{"tab", "data:\n\ttrain: x\n", "line 2: found character that cannot start any token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.doc), Defaults())
			require.ErrorContains(t, err, tc.msg)
			require.NotContains(t, err.Error(), "yaml:")
		})
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	for _, tc := range []struct{ name, doc, msg string }{
		{"missing train", "data:\n  batch_size: 3\n", "data.train: required"},
		{"bad enum", "data:\n  train: x\ntrain:\n  batchnorm: sometimes\n", `train.batchnorm: "sometimes" is not one of auto, frozen, train, adapt, legacy`},
		{"bad number", "data:\n  train: x\ntrain:\n  lr: -1\n", "train.lr: must be positive, got -1"},
		{"bad stage", "data:\n  train: x\nstages:\n  - name: a\n    epochs: 2\n    freeze: layer9\n", `stages[0].freeze: "layer9" is not one of`},
		{"dropout", "data:\n  train: x\nmodel:\n  head:\n    dropout: 1.5\n", "model.head.dropout: must be in [0, 1)"},
		{"folds", "data:\n  train: x\ncv:\n  folds: 1\n", "cv.folds: want 0 (off) or at least 2"},
		{"mean of 2", "data:\n  train: x\n  mean: [0.5, 0.5]\n", "data.mean: want 3 values (R, G, B), got 2"},
		{"mean infinite", "data:\n  train: x\n  mean: [0.5, .inf, 0.5]\n", "data.mean: value 2 is +Inf: want a finite number"},
		{"std zero", "data:\n  train: x\n  std: [0.5, 0.5, 0]\n", "data.std: value 3 is 0: want a positive number"},
		{"std NaN", "data:\n  train: x\n  std: [.nan, 0.5, 0.5]\n", "data.std: value 1 is NaN: want a finite number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.doc), Defaults())
			require.NoError(t, err)
			require.ErrorContains(t, c.Validate(), tc.msg)
		})
	}
}

// TestCheckpointFormat1Metadata decodes the metadata finetune 0.1.0
// wrote, testdata/checkpoint-1-metadata.json: its config is JSON under Go's
// field names.
func TestCheckpointFormat1Metadata(t *testing.T) {
	b, err := os.ReadFile("testdata/checkpoint-1-metadata.json")
	require.NoError(t, err)
	var md map[string]string
	require.NoError(t, json.Unmarshal(b, &md))
	require.Equal(t, "finetune-checkpoint/1", md["format"])
	want := Defaults()
	want.Data.Train = "data/train"
	want.Data.ValSplit = 0.25
	want.Model.Arch = "resnet18"
	want.Model.Head.Hidden = []int{64}
	want.Augment.Scale = [2]float64{0.5, 1}
	// The defaults of 0.1.0, written in the file.
	want.Model.Head.Dropout, want.Train.LabelSmoothing = 0.2, 0.1
	want.Augment.Brightness, want.Augment.Contrast, want.Augment.Saturation = 0.2, 0.2, 0.2
	want.Train.LR = 0.05
	want.Train.EarlyStopping.MinDelta = 1e-5
	want.Stages = []Stage{{"head", 2, "all", 0.1}, {"body", 3, "layer2", 0.01}}
	want.Seed = 7
	want.Output.Dir = "runs/latest" // the default when the file was written
	meta, err := decodeMeta("old.safetensors", md)
	require.NoError(t, err)
	require.Equal(t, Meta{Form: "full", Config: want, Classes: []string{"cat", "dog"}, Normalize: data.ImageNet,
		Metrics:  map[string]float64{"val_accuracy": 0.75},
		Versions: map[string]string{"finetune": "0.1.0", "libtorch": "1.13.1", "go": "go1.26.8"}}, meta)

	// Written again, it is format 2, under the keys, and reads back the same.
	md, err = meta.encode()
	require.NoError(t, err)
	require.Equal(t, CheckpointFormat, md["format"])
	require.Equal(t, keyNames(), documentKeys(t, md["config"]))
	again, err := decodeMeta("new.safetensors", md)
	require.NoError(t, err)
	require.Equal(t, meta, again)

	for _, tc := range []struct{ format, config, msg string }{
		{"finetune-checkpoint/1", `{"Data":{"Train":"x","Colour":"red"}}`, `old.safetensors: metadata "config": line 1: unknown config key "data.Colour"`},
		{"finetune-checkpoint/2", `{"Data":{"Train":"x"}}`, `old.safetensors: metadata "config": line 1: unknown config key "Data" (did you mean "data"?)`},
		{"finetune-checkpoint/1", `{"Data":`, `old.safetensors: metadata "config"`},
		{"finetune-checkpoint/0", `{}`, `old.safetensors: not a finetune checkpoint (format "finetune-checkpoint/0", want "finetune-checkpoint/2")`},
	} {
		md["format"], md["config"] = tc.format, tc.config
		_, err := decodeMeta("old.safetensors", md)
		require.ErrorContains(t, err, tc.msg)
	}
}

func TestConfigDiff(t *testing.T) {
	a, b := custom(), custom()
	require.Empty(t, configDiff(a, b))
	b.Output.Dir = "elsewhere"
	require.Empty(t, configDiff(a, b), "where output goes may change")
	b.Train.EarlyStopping.Patience = 9
	require.Equal(t, "train.early_stopping.patience was 5, now 9", configDiff(a, b))
}

// FuzzDecodeMeta checks that no checkpoint metadata makes decodeMeta
// panic, and that what it accepts names at least one class. The seed is
// the metadata of testdata/checkpoint-1-metadata.json, in format 1 and 2.
func FuzzDecodeMeta(f *testing.F) {
	md := format1Metadata(f)
	f.Add(md["format"], md["form"], md["config"], md["classes"], md["normalize"], md["metrics"], md["versions"], "", "")
	meta, err := decodeMeta("seed", md)
	require.NoError(f, err)
	md, err = meta.encode()
	require.NoError(f, err)
	f.Add(md["format"], md["form"], md["config"], md["classes"], md["normalize"], md["metrics"], md["versions"], `{"stages":[]}`, `{"relative":"x","path":"/x"}`)
	f.Fuzz(func(t *testing.T, format, form, config, classes, normalize, metrics, versions, plan, base string) {
		md := map[string]string{"format": format, "form": form, "config": config, "classes": classes,
			"normalize": normalize, "metrics": metrics, "versions": versions}
		if plan != "" {
			md["plan"] = plan
		}
		if base != "" {
			md["base"] = base
		}
		meta, err := decodeMeta("fuzz.safetensors", md)
		if err != nil {
			require.Contains(t, err.Error(), "fuzz.safetensors")
			return
		}
		require.NotEmpty(t, meta.Classes)
	})
}

// TestCheckpointWithoutClasses: a checkpoint whose class list is empty is
// refused, naming the file, before a model of 0 outputs is built.
func TestCheckpointWithoutClasses(t *testing.T) {
	md := format1Metadata(t)
	for _, classes := range []string{`[]`, `null`} {
		md["classes"] = classes
		_, err := decodeMeta("empty.safetensors", md)
		require.ErrorContains(t, err, `empty.safetensors: metadata "classes" is empty`)
	}
}
