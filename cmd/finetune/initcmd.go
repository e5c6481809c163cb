package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/finetune-go/finetune/finetune"
)

func cmdInit(_ context.Context, args []string) error {
	fset := newFlagSet("init", "finetune init [--force] [FILE]", `
Writes the default configuration, every key with its value and a comment
saying what it does, to FILE (default finetune.yaml, which run, inspect and
config read when no --config is given). Set data.train, then run
'finetune inspect' and 'finetune run'.`)
	force := fset.Bool("force", false, "overwrite FILE if it exists")
	pos, err := fset.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("init: one FILE at most, got %d", len(pos))
	}
	path := defaultConfigFile
	if len(pos) == 1 {
		path = pos[0]
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: use --force to overwrite it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(finetune.DefaultConfigYAML()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("wrote %s: set data.train, then 'finetune inspect' and 'finetune run'\n", path)
	return nil
}
