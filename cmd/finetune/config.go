package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/finetune-go/finetune/finetune"
	"github.com/go-viper/mapstructure/v2"
	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// defaultConfigFile is read when no --config is given and it exists.
const defaultConfigFile = "finetune.yaml"

// configSource is where a configuration comes from, besides flags and
// the environment.
type configSource struct {
	file string           // --config
	base *finetune.Config // a checkpoint's, used when file is empty
	what string           // names base, for messages
}

// checkpointBase makes the configuration of checkpoint path the base
// when no file is given; flag names the flag that gave path, for errors.
func (src *configSource) checkpointBase(path, flag string) error {
	if path == "" || src.file != "" {
		return nil
	}
	meta, err := finetune.ReadMeta(path)
	if err != nil {
		return usagef("%s: %w", flag, err)
	}
	src.base, src.what = &meta.Config, path
	return nil
}

// load builds the configuration from, in increasing precedence, the
// defaults, a file (src.file, else src.base, else ./finetune.yaml when it
// exists), FINETUNE_ environment variables and the flags given. It
// returns a description of where it came from. Every error is a
// usageError.
func (src configSource) load(flags *configFlags) (finetune.Config, string, error) {
	base := finetune.Defaults()
	var from []string
	switch {
	case src.file != "":
		var err error
		if base, err = readConfig(src.file); err != nil {
			return finetune.Config{}, "", usageError{err}
		}
		from = append(from, src.file)
	case src.base != nil:
		base = *src.base
		from = append(from, src.what)
	default:
		if _, err := os.Stat(defaultConfigFile); err == nil {
			if base, err = readConfig(defaultConfigFile); err != nil {
				return finetune.Config{}, "", usageError{err}
			}
			from = append(from, defaultConfigFile)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return finetune.Config{}, "", usagef("config: %w", err)
		}
	}
	env, err := environment(flags)
	if err != nil {
		return finetune.Config{}, "", usageError{err}
	}
	from = append(from, env...)
	v, err := newViper(base)
	if err != nil {
		return finetune.Config{}, "", usagef("config: %w", err)
	}
	flags.apply(v)
	if g := flags.given(); len(g) > 0 {
		from = append(from, "flags ("+strings.Join(g, " ")+")")
	}
	if len(from) == 0 {
		from = []string{"defaults"}
	}
	cfg, err := decodeConfig(v)
	if err != nil {
		err = usageError{err}
	}
	return cfg, strings.Join(from, " < "), err
}

// readConfig reads a configuration file over the defaults: YAML or JSON,
// or TOML for a name ending in .toml.
func readConfig(path string) (finetune.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return finetune.Config{}, fmt.Errorf("config: %w", err)
	}
	if strings.EqualFold(filepath.Ext(path), ".toml") {
		// YAML holds whatever TOML does: one decoder checks the keys.
		var doc map[string]any
		if err = toml.Unmarshal(b, &doc); err == nil {
			b, err = yaml.Marshal(doc)
		}
	}
	var cfg finetune.Config
	if err == nil {
		cfg, err = finetune.ParseConfig(b, finetune.Defaults())
	}
	if err != nil {
		return finetune.Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// newViper returns a viper instance holding base and reading FINETUNE_
// environment variables: flags set on it (configFlags.apply) win over
// the environment, which wins over base.
func newViper(base finetune.Config) (*viper.Viper, error) {
	v := viper.New()
	v.SetEnvPrefix("FINETUNE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	v.SetConfigType("yaml")
	return v, v.ReadConfig(strings.NewReader(finetune.ConfigYAML(base)))
}

// decodeConfig decodes v into a Config, under the configuration's keys (the
// json tags), and validates it. Values from the environment and flags
// are strings: the hooks parse lists and stages.
func decodeConfig(v *viper.Viper) (finetune.Config, error) {
	var c finetune.Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.TagName = "json"
		dc.ErrorUnused = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(stageHook, listHook, mapstructure.StringToSliceHookFunc(","))
	})
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return c, c.Validate()
}

// stageHook decodes the compact form "head:5:all,finetune:15:layer3:0.1"
// (from a flag or an environment variable) into stages.
func stageHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[[]finetune.Stage]() {
		return data, nil
	}
	s, ok := data.(string)
	if !ok {
		return data, nil
	}
	return finetune.ParseStages(s)
}

// listHook accepts "[512, 256]" and "0.08,1" for number lists given as a
// string (an environment variable or a flag).
func listHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || (to.Kind() != reflect.Slice && to.Kind() != reflect.Array) || to == reflect.TypeFor[[]finetune.Stage]() {
		return data, nil
	}
	s = strings.Trim(strings.TrimSpace(s), "[]")
	if s == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

// environment describes the FINETUNE_ variables that set configuration
// keys. One that looks like a misspelt key is an error; other FINETUNE_
// variables, such as FINETUNE_DIST_BACKEND, are not keys and are let be.
func environment(flags *configFlags) ([]string, error) {
	var names, set []string
	for _, kv := range flags.values {
		name := envName(kv.key.Name)
		names = append(names, name)
		// Like viper, take an empty variable for an unset one.
		if v := os.Getenv(name); v != "" {
			if _, err := parseValue(kv.key, v); err != nil {
				return nil, fmt.Errorf("environment: %s=%q: %w", name, v, err)
			}
			set = append(set, name)
		}
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "FINETUNE_") || slices.Contains(names, name) {
			continue
		}
		if hint := didYouMean(name, names, ""); hint != "" {
			return nil, fmt.Errorf("environment: %s is not a configuration key%s", name, hint)
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	return []string{"environment (" + strings.Join(set, ", ") + ")"}, nil
}

func cmdConfig(_ context.Context, args []string) error {
	fs := newFlagSet("config", "finetune config [--config FILE] [flags]", `
Prints the configuration a run with the same file, environment and flags
would use, every default filled in, as YAML, then checks it. Keys come
from, each winning over the one before: the defaults, the file (--config,
else ./finetune.yaml when it exists), FINETUNE_<KEY> environment variables
and --<key> flags.`)
	file := fs.String("config", "", "configuration `FILE` (YAML or JSON; default ./finetune.yaml when it exists)")
	keys := fs.addConfigFlags()
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("config: unexpected argument %q", pos[0])
	}
	cfg, from, err := configSource{file: *file}.load(keys)
	var invalid *finetune.ConfigError
	if err == nil || errors.As(err, &invalid) {
		fmt.Printf("# from: %s\n%s", from, finetune.ConfigYAML(cfg))
	}
	return err
}
