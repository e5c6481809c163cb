package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/finetune-go/finetune/finetune"
	"github.com/finetune-go/finetune/torch"
)

func cmdVersion(_ context.Context, args []string) error {
	fs := newFlagSet("version", "finetune version [--format table|json]", `
Prints the versions of finetune, Go and libtorch, what libtorch can use
(CUDA, cuDNN and the GPUs it sees) and the memory allocator that serves it.`)
	format := fs.String("format", "table", "output: table or json")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("version: unexpected argument %q", pos[0])
	}
	if err := checkFormat(*format, "table", "json"); err != nil {
		return err
	}
	b, err := torch.BuildInfo()
	if err != nil {
		return err
	}
	goVersion := runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	alloc := torch.Allocator()
	if *format == "json" {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"finetune": finetune.Version, "go": goVersion, "libtorch": b.Version, "libtorch_build": torch.Version(),
			"cuda": b.CUDAVersion, "cudnn": b.CuDNNVersion, "cuda_available": b.CUDAAvailable, "gpus": b.DeviceCount,
			"allocator": alloc.String(),
		})
	}
	fmt.Printf("finetune  %s\ngo        %s\nlibtorch  %s\nmalloc    %v\n", finetune.Version, goVersion, strings.TrimPrefix(b.String(), "libtorch "), alloc)
	return nil
}
