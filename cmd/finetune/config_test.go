package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/finetune-go/finetune/finetune"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// loadConfig loads the configuration as a command with src and args
// would. A configuration that decodes but is invalid (data.train unset)
// is returned without error.
func loadConfig(t *testing.T, src configSource, args ...string) (finetune.Config, string, error) {
	t.Helper()
	fs := newFlagSet("config", "", "")
	flags := fs.addConfigFlags()
	_, err := fs.parse(args)
	require.NoError(t, err)
	cfg, from, err := src.load(flags)
	if invalid := (*finetune.ConfigError)(nil); errors.As(err, &invalid) {
		err = nil
	}
	return cfg, from, err
}

// settings is cfg as nested maps, under the keys.
func settings(t *testing.T, cfg finetune.Config) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(finetune.ConfigYAML(cfg)), &m))
	return m
}

// otherValue is a value of k other than its default, as a flag or
// environment variable gives it and as YAML.
func otherValue(k finetune.Key) (arg, doc string) {
	switch {
	case k.Name == "stages":
		return "a:1:all:0.5", "[{name: a, epochs: 1, freeze: all, backbone_lr_mult: 0.5}]"
	case k.Name == "train.max_time":
		return "1h30m", "1h30m"
	case k.Kind == reflect.Bool:
		s := strconv.FormatBool(!k.Default.(bool))
		return s, s
	case k.Kind == reflect.Int || k.Kind == reflect.Uint64:
		return "7", "7"
	case k.Kind == reflect.Float64:
		return "0.375", "0.375"
	case k.Kind == reflect.Slice && reflect.TypeOf(k.Default).Elem().Kind() == reflect.Float64:
		// data.mean and data.std: three channels.
		return "0.5,0.25,0.125", "[0.5, 0.25, 0.125]"
	case k.Kind == reflect.Slice:
		return "3,4", "[3, 4]"
	case k.Kind == reflect.Array:
		return "0.25,0.5", "[0.25, 0.5]"
	}
	return "zz", "zz"
}

// TestEveryKeyFromFileEnvironmentAndFlag sets each of finetune.Keys in a
// file, an environment variable and a flag, and finds exactly that key
// changed in the configuration (as ConfigYAML writes it).
func TestEveryKeyFromFileEnvironmentAndFlag(t *testing.T) {
	dir := t.TempDir()
	for _, k := range finetune.Keys() {
		arg, doc := otherValue(k)
		var value any
		require.NoError(t, yaml.Unmarshal([]byte(doc), &value))
		want := settings(t, finetune.Defaults())
		m, path := want, strings.Split(k.Name, ".")
		for _, section := range path[:len(path)-1] {
			m = m[section].(map[string]any)
		}
		require.Contains(t, m, path[len(path)-1], "ConfigYAML writes %s", k.Name)
		m[path[len(path)-1]] = value

		var file strings.Builder
		for i, name := range path {
			file.WriteString("\n" + strings.Repeat("  ", i) + name + ":")
		}
		file.WriteString(" " + doc + "\n")
		f := filepath.Join(dir, "c.yaml")
		require.NoError(t, os.WriteFile(f, []byte(file.String()), 0o644))
		for _, src := range []struct {
			name string
			load func(t *testing.T) (finetune.Config, string, error)
		}{
			{"file", func(t *testing.T) (finetune.Config, string, error) {
				return loadConfig(t, configSource{file: f})
			}},
			{"environment", func(t *testing.T) (finetune.Config, string, error) {
				t.Setenv(envName(k.Name), arg)
				return loadConfig(t, configSource{})
			}},
			{"flag", func(t *testing.T) (finetune.Config, string, error) {
				return loadConfig(t, configSource{}, "--"+k.Name+"="+arg)
			}},
		} {
			t.Run(k.Name+"/"+src.name, func(t *testing.T) {
				cfg, _, err := src.load(t)
				require.NoError(t, err)
				require.Equal(t, want, settings(t, cfg))
			})
		}
	}
}

func TestConfigSourcePrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte("data:\n  batch_size: 8\ntrain:\n  lr: 0.5\n  optimizer: sgd\n"), 0o644))
	for _, tc := range []struct {
		name  string
		file  string
		env   []string
		flags []string
		lr    float64
		batch int
		from  string
	}{
		{"defaults", "", nil, nil, 1e-4, 32, "defaults"},
		{"file", file, nil, nil, 0.5, 8, file},
		{"environment over file", file, []string{"FINETUNE_TRAIN_LR=0.25"}, nil, 0.25, 8, file + " < environment (FINETUNE_TRAIN_LR)"},
		{"flag over environment", file, []string{"FINETUNE_TRAIN_LR=0.25", "FINETUNE_DATA_BATCH_SIZE=16"}, []string{"--data.batch_size", "64"},
			0.25, 64, file + " < environment (FINETUNE_DATA_BATCH_SIZE, FINETUNE_TRAIN_LR) < flags (--data.batch_size)"},
		{"flag over file", file, nil, []string{"--train.lr", "0.125"}, 0.125, 8, file + " < flags (--train.lr)"},
		{"flag over environment, no file", "", []string{"FINETUNE_TRAIN_LR=0.25"}, []string{"--train.lr", "0.125"}, 0.125, 32,
			"environment (FINETUNE_TRAIN_LR) < flags (--train.lr)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kv := range tc.env {
				name, value, _ := strings.Cut(kv, "=")
				t.Setenv(name, value)
			}
			cfg, from, err := loadConfig(t, configSource{file: tc.file}, tc.flags...)
			require.NoError(t, err)
			require.Equal(t, tc.lr, cfg.Train.LR)
			require.Equal(t, tc.batch, cfg.Data.BatchSize)
			if tc.file != "" {
				require.Equal(t, "sgd", cfg.Train.Optimizer, "set only in the file")
			}
			require.Equal(t, 0.01, cfg.Train.WeightDecay, "set nowhere")
			require.Contains(t, from, tc.from)
		})
	}
}

func TestConfigSourceErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	for _, tc := range []struct {
		name string
		file string
		env  string
		msg  string
	}{
		{"file typo", write("typo.yaml", "train:\n  lrr: 0.1\n"), "",
			`typo.yaml: line 2: unknown config key "train.lrr" (did you mean "train.lr"?)`},
		{"toml typo", write("typo.toml", "[train]\nlrr = 0.1\n"), "", `unknown config key "train.lrr" (did you mean "train.lr"?)`},
		{"environment typo", "", "FINETUNE_TRAIN_LRR=0.1",
			"environment: FINETUNE_TRAIN_LRR is not a configuration key (did you mean FINETUNE_TRAIN_LR?)"},
		{"environment value", "", "FINETUNE_DATA_BATCH_SIZE=many", `environment: FINETUNE_DATA_BATCH_SIZE="many": not an integer`},
		{"missing file", filepath.Join(dir, "missing.yaml"), "", "missing.yaml: no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if name, value, ok := strings.Cut(tc.env, "="); ok {
				t.Setenv(name, value)
			}
			_, _, err := loadConfig(t, configSource{file: tc.file})
			require.ErrorContains(t, err, tc.msg)
			require.ErrorAs(t, err, new(usageError))
		})
	}

	// The project's other FINETUNE_ variables are not taken for typos.
	for _, name := range []string{"FINETUNE_DIST_BACKEND", "FINETUNE_DIST_TIMEOUT", "FINETUNE_DIST_TEST_DIR",
		"FINETUNE_DIST_TEST_JOB", "FINETUNE_DIST_TEST_VICTIM", "FINETUNE_TEST_ATOMIC_PATH"} {
		t.Setenv(name, "x")
	}
	_, from, err := loadConfig(t, configSource{file: write("toml.toml", "[train]\nlr = 0.5\n")})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "toml.toml"), from)
}

// TestConfigSourceBase loads a checkpoint's configuration as the file.
func TestConfigSourceBase(t *testing.T) {
	base := finetune.Defaults()
	base.Data.Train = "imgs"
	base.Model.Weights = "true" // a string YAML would read as a boolean unquoted
	base.Seed = 1<<64 - 1
	base.Stages = base.Stages[:1]
	t.Setenv("FINETUNE_TRAIN_LR", "0.25")
	cfg, from, err := loadConfig(t, configSource{base: &base, what: "checkpoint c.safetensors"})
	require.NoError(t, err)
	want := base
	want.Train.LR = 0.25
	require.Equal(t, want, cfg)
	require.Equal(t, "checkpoint c.safetensors < environment (FINETUNE_TRAIN_LR)", from)
}

// TestConfigListsFromEnvironment reads lists in the forms a shell user
// types.
func TestConfigListsFromEnvironment(t *testing.T) {
	t.Setenv("FINETUNE_MODEL_HEAD_HIDDEN", "[512, 256]")
	t.Setenv("FINETUNE_AUGMENT_SCALE", "0.08,1")
	t.Setenv("FINETUNE_STAGES", "warm:2:all,deep:4:layer2:0.01")
	cfg, _, err := loadConfig(t, configSource{})
	require.NoError(t, err)
	require.Equal(t, []int{512, 256}, cfg.Model.Head.Hidden)
	require.Equal(t, [2]float64{0.08, 1}, cfg.Augment.Scale)
	require.Equal(t, []finetune.Stage{{Name: "warm", Epochs: 2, Freeze: "all", BackboneLRMult: 0.1}, {Name: "deep", Epochs: 4, Freeze: "layer2", BackboneLRMult: 0.01}}, cfg.Stages)
}

// TestBoolValueAfterSpace gives every boolean key, and predict's --tta,
// its value after a space, beside arguments and other flags.
func TestBoolValueAfterSpace(t *testing.T) {
	for _, k := range finetune.Keys() {
		if k.Kind != reflect.Bool {
			continue
		}
		want := !k.Default.(bool)
		for _, args := range [][]string{
			{"--" + k.Name, strconv.FormatBool(want), "pos"},
			{"pos", "-" + k.Name, strings.ToUpper(strconv.FormatBool(want))},
			{"--output.dir", "--" + k.Name, "--" + k.Name + "=" + strconv.FormatBool(want), "pos"},
		} {
			fs := newFlagSet("run", "", "")
			flags := fs.addConfigFlags()
			pos, err := fs.parse(args)
			require.NoError(t, err, args)
			require.Equal(t, []string{"pos"}, pos, args)
			require.Equal(t, want, flags.byName[k.Name].value, args)
		}
	}
	for _, tc := range []struct {
		args []string
		tta  bool
		pos  []string
	}{
		{[]string{"--tta", "false", "a.jpg"}, false, []string{"a.jpg"}},
		{[]string{"a.jpg", "--tta", "true"}, true, []string{"a.jpg"}},
		{[]string{"--tta", "a.jpg"}, true, []string{"a.jpg"}},
		{[]string{"--tta", "--", "false"}, true, []string{"false"}},
	} {
		fs := newFlagSet("predict", "", "")
		tta := fs.Bool("tta", false, "")
		pos, err := fs.parse(tc.args)
		require.NoError(t, err, tc.args)
		require.Equal(t, tc.pos, pos, tc.args)
		require.Equal(t, tc.tta, *tta, tc.args)
	}
}

// TestBadValueFromEnvironmentAndFlag: a bad value in a variable or a flag
// is named with its variable or flag and said in words, without the
// decoder's internals.
func TestBadValueFromEnvironmentAndFlag(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"data.batch_size", "x", "not an integer"},
		{"seed", "-1", "not an integer of 0 or more"},
		{"probe", "maybe", "not true or false"},
		{"train.lr", "fast", "not a number"},
		{"stages", "a:x:all", `stages: "a:x:all": epochs "x" is not an integer`},
		{"model.head.hidden", "512,x", `"x": not an integer`},
		{"augment.scale", "1", "not MIN,MAX"},
	} {
		var k finetune.Key
		for _, key := range finetune.Keys() {
			if key.Name == tc.key {
				k = key
			}
		}
		env := envName(tc.key)
		t.Setenv(env, tc.value)
		_, _, err := loadConfig(t, configSource{})
		require.EqualError(t, err, fmt.Sprintf("environment: %s=%q: %s", env, tc.value, tc.want))
		t.Setenv(env, "")

		fs := newFlagSet("config", "", "")
		fs.addConfigFlags()
		_, err = fs.parse([]string{"--" + k.Name + "=" + tc.value})
		require.Error(t, err, tc.key)
		require.ErrorContains(t, err, fmt.Sprintf("value %q for", tc.value))
		require.ErrorContains(t, err, fmt.Sprintf("--%s: %s", tc.key, tc.want))
		for _, internal := range []string{"strconv", "mapstructure", "decoding failed", "cannot parse"} {
			require.NotContains(t, err.Error(), internal)
		}
	}
}
