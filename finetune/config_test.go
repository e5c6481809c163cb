package finetune

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

func loadFile(t *testing.T, path string) (Config, error) {
	t.Helper()
	v := NewViper()
	v.SetConfigFile(path)
	require.NoError(t, v.ReadInConfig())
	return Load(v)
}

func TestDefaultConfigIsValidAndRoundTrips(t *testing.T) {
	yaml := DefaultConfigYAML()
	path := writeFile(t, "finetune.yaml", strings.Replace(yaml, "train: \"\"", "train: data/train", 1))
	c, err := loadFile(t, path)
	require.NoError(t, err, yaml)
	want := Defaults()
	want.Data.Train = "data/train"
	require.Equal(t, want, c)
	for _, k := range Keys() {
		require.Contains(t, yaml, k.Name[strings.LastIndex(k.Name, ".")+1:]+":", "key %s missing from the default file", k.Name)
	}
}

func TestConfigPrecedence(t *testing.T) {
	path := writeFile(t, "c.yaml", "data:\n  train: /file\n  batch_size: 8\ntrain:\n  lr: 0.5\n  optimizer: sgd\n")
	t.Setenv("FINETUNE_TRAIN_LR", "0.25")
	t.Setenv("FINETUNE_DATA_BATCH_SIZE", "16")
	v := NewViper()
	v.SetConfigFile(path)
	require.NoError(t, v.ReadInConfig())
	v.Set("data.batch_size", 64) // what a bound, changed flag does
	c, err := Load(v)
	require.NoError(t, err)
	require.Equal(t, "/file", c.Data.Train, "file only")
	require.Equal(t, "sgd", c.Train.Optimizer, "file only")
	require.Equal(t, 0.25, c.Train.LR, "env beats file")
	require.Equal(t, 64, c.Data.BatchSize, "flag beats env")
	require.Equal(t, 0.01, c.Train.WeightDecay, "default")
}

func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv("FINETUNE_DATA_TRAIN", "/d")
	t.Setenv("FINETUNE_MODEL_HEAD_HIDDEN", "[512, 256]")
	t.Setenv("FINETUNE_AUGMENT_SCALE", "0.08,1")
	t.Setenv("FINETUNE_STAGES", "warm:2:all,deep:4:layer2:0.01")
	c, err := Load(NewViper())
	require.NoError(t, err)
	require.Equal(t, []int{512, 256}, c.Model.Head.Hidden)
	require.Equal(t, [2]float64{0.08, 1}, c.Augment.Scale)
	require.Equal(t, []Stage{{"warm", 2, "all", 0.1}, {"deep", 4, "layer2", 0.01}}, c.Stages)
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, yaml, msg string
	}{
		{"unknown key", "data:\n  train: x\n  batch_sise: 3\n", `unknown config key "data.batch_sise" (did you mean "data.batch_size"?)`},
		{"unknown section", "data:\n  train: x\nmodle:\n  arch: resnet18\n", `unknown config key "modle.arch"`},
		{"missing train", "data:\n  batch_size: 3\n", "data.train: required"},
		{"bad enum", "data:\n  train: x\ntrain:\n  batchnorm: sometimes\n", `train.batchnorm: "sometimes" is not one of auto, frozen, train, adapt, legacy`},
		{"bad number", "data:\n  train: x\ntrain:\n  lr: -1\n", "train.lr: must be positive, got -1"},
		{"bad type", "data:\n  train: x\n  batch_size: many\n", "batch_size"},
		{"bad stage", "data:\n  train: x\nstages:\n  - name: a\n    epochs: 2\n    freeze: layer9\n", `stages[0].freeze: "layer9" is not one of`},
		{"unknown stage key", "data:\n  train: x\nstages:\n  - name: a\n    epochs: 2\n    freeze: all\n    lr: 3\n", "lr"},
		{"dropout", "data:\n  train: x\nmodel:\n  head:\n    dropout: 1.5\n", "model.head.dropout: must be in [0, 1)"},
		{"folds", "data:\n  train: x\ncv:\n  folds: 1\n", "cv.folds: want 0 (off) or at least 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadFile(t, writeFile(t, "c.yaml", c.yaml))
			require.ErrorContains(t, err, c.msg)
		})
	}
}
