package main

import (
	"context"
	"errors"
	"os"
	"os/exec"

	"github.com/finetune-go/finetune/torch/distributed"
)

func init() {
	register("launch", "start N local processes of a command for data-parallel training", cmdLaunch)
}

func cmdLaunch(ctx context.Context, args []string) error {
	fs := newFlagSet("launch", "finetune launch --nproc N -- run [flags]", `
Starts N processes of the finetune command that follows "--" on this host,
each with the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR=127.0.0.1, MASTER_PORT), so that they train one model together:
each on its share of every epoch, gradients averaged (Gloo on the CPU,
NCCL on GPUs). Only rank 0 writes the run folder. When a process fails the
others are stopped; an interrupt reaches them all, and rank 0 writes the
checkpoint to resume from. For several hosts, start 'finetune run' on each
with those variables set (see the README).`)
	nproc := fs.Int("nproc", 2, "number of processes (one per GPU on a GPU host)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("launch: give the command to run after --, e.g. finetune launch --nproc 2 -- run --config c.yaml")
	}
	if *nproc < 1 {
		return usagef("launch: --nproc must be at least 1, got %d", *nproc)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	err = distributed.Launch(ctx, *nproc, append([]string{exe}, pos...), nil)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	return err
}
