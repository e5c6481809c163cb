package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/finetune-go/finetune/finetune"
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

// load builds the configuration from, in increasing precedence, the
// defaults, a file (src.file, else src.base, else ./finetune.yaml when it
// exists), FINETUNE_ environment variables and the flags given. It
// returns a description of where it came from. Every error is a
// usageError.
func (src configSource) load(flags *configFlags) (finetune.Config, string, error) {
	v := finetune.NewViper()
	var from []string
	switch {
	case src.file != "":
		v.SetConfigFile(src.file)
		if err := v.ReadInConfig(); err != nil {
			return finetune.Config{}, "", usagef("config %s: %w", src.file, err)
		}
		from = append(from, src.file)
	case src.base != nil:
		v.SetConfigType("yaml")
		if err := v.ReadConfig(strings.NewReader(finetune.ConfigYAML(*src.base))); err != nil {
			return finetune.Config{}, "", usagef("%s: %w", src.what, err)
		}
		from = append(from, src.what)
	default:
		if _, err := os.Stat(defaultConfigFile); err == nil {
			v.SetConfigFile(defaultConfigFile)
			if err := v.ReadInConfig(); err != nil {
				return finetune.Config{}, "", usagef("config %s: %w", defaultConfigFile, err)
			}
			from = append(from, defaultConfigFile)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return finetune.Config{}, "", usagef("config: %w", err)
		}
	}
	from = append(from, environment(flags)...)
	flags.apply(v)
	if g := flags.given(); len(g) > 0 {
		from = append(from, "flags ("+strings.Join(g, " ")+")")
	}
	if len(from) == 0 {
		from = []string{"defaults"}
	}
	cfg, err := finetune.Load(v)
	if err != nil {
		err = usageError{err}
	}
	return cfg, strings.Join(from, " < "), err
}

// environment describes the FINETUNE_ variables that set configuration
// keys, and warns about one that looks like a misspelt key (other
// FINETUNE_ variables, such as FINETUNE_DIST_BACKEND, are not keys).
func environment(flags *configFlags) []string {
	var names, set []string
	for _, kv := range flags.values {
		names = append(names, envName(kv.key.Name))
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case !strings.HasPrefix(name, "FINETUNE_"):
		case slices.Contains(names, name):
			set = append(set, name)
		default:
			if hint := didYouMean(name, names, ""); hint != "" {
				fmt.Fprintf(os.Stderr, "warning: %s is not a configuration key%s\n", name, hint)
			}
		}
	}
	if len(set) == 0 {
		return nil
	}
	return []string{"environment (" + strings.Join(set, ", ") + ")"}
}

func cmdConfig(_ context.Context, args []string) error {
	fs := newFlagSet("config", "finetune config [--config FILE] [flags]", `
Prints the configuration a run with the same file, environment and flags
would use, every default filled in, as YAML, then checks it. Keys come
from, each winning over the one before: the defaults, the file (--config,
else ./finetune.yaml when it exists), FINETUNE_<KEY> environment variables
and --<key> flags.`)
	file := fs.String("config", "", "configuration `FILE` (YAML, JSON or TOML; default ./finetune.yaml when it exists)")
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
