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
	"github.com/finetune-go/finetune/torch/distributed"
)

func cmdVersion(_ context.Context, args []string) error {
	fs := newFlagSet("version", "finetune version [--format table|json]", `
Prints the versions of finetune, Go and libtorch, what libtorch can use
(CUDA, cuDNN and the GPUs it sees), the memory allocator that serves it
and the process groups (c10d backends) data-parallel training can use:
gloo, and nccl when the CUDA build has it.`)
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
	// The process groups data-parallel training can use: a CUDA build
	// without NCCL reduces gradients through the host with Gloo.
	groups := distributed.Backends()
	if *format == "json" {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"finetune": finetune.Version, "go": goVersion, "libtorch": b.Version, "libtorch_build": torch.Version(),
			"cuda": b.CUDAVersion, "cudnn": b.CuDNNVersion, "cuda_available": b.CUDAAvailable, "gpus": b.DeviceCount,
			"allocator": alloc.String(), "process_groups": append([]string{}, groups...),
		})
	}
	c10d := strings.Join(groups, ", ")
	if c10d == "" {
		c10d = "none (a shim_shared build: no distributed training)"
	}
	fmt.Printf("finetune  %s\ngo        %s\nlibtorch  %s\nc10d      %s\nmalloc    %v\n",
		finetune.Version, goVersion, strings.TrimPrefix(b.String(), "libtorch "), c10d, alloc)
	return nil
}
