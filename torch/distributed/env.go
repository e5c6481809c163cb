package distributed

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// FromEnv returns the Config that the environment describes:
//
//   - torchrun's variables, also set by Launch: RANK, WORLD_SIZE,
//     LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
//   - without RANK, Slurm's: SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID
//     of a task started by srun, with MASTER_ADDR (required when the job
//     spans several nodes) and MASTER_PORT;
//   - FINETUNE_DIST_BACKEND (gloo or nccl) and FINETUNE_DIST_TIMEOUT (a
//     Go duration such as 10m) set Backend and Timeout.
//
// A process started on its own gets WorldSize 1: callers join a group
// only when WorldSize > 1. An empty variable counts as unset; unset
// values are left zero, for Init's defaults.
func FromEnv() (Config, error) {
	c := Config{WorldSize: 1, MasterAddr: os.Getenv("MASTER_ADDR"), Backend: os.Getenv("FINETUNE_DIST_BACKEND")}
	rank, world, local := "RANK", "WORLD_SIZE", "LOCAL_RANK"
	slurm := false
	if os.Getenv(rank) == "" && os.Getenv("SLURM_PROCID") != "" {
		rank, world, local = "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"
		slurm = true
	}
	var err error
	if c.Rank, err = envInt(rank, 0); err != nil {
		return c, err
	}
	if c.WorldSize, err = envInt(world, 1); err != nil {
		return c, err
	}
	if c.LocalRank, err = envInt(local, 0); err != nil {
		return c, err
	}
	if c.MasterPort, err = envInt("MASTER_PORT", 0); err != nil {
		return c, err
	}
	if os.Getenv(rank) != "" && os.Getenv(world) == "" {
		return c, fmt.Errorf("distributed: %s is set but %s is not", rank, world)
	}
	if v := os.Getenv("FINETUNE_DIST_TIMEOUT"); v != "" {
		if c.Timeout, err = time.ParseDuration(v); err != nil || c.Timeout <= 0 {
			return c, fmt.Errorf("distributed: FINETUNE_DIST_TIMEOUT=%q: want a positive duration such as 10m", v)
		}
	}
	if slurm && c.WorldSize > 1 && c.MasterAddr == "" {
		if nodes, _ := envInt("SLURM_NNODES", 1); nodes > 1 {
			return c, fmt.Errorf("distributed: a Slurm job on %d nodes needs MASTER_ADDR, the address of the node of task 0: "+
				"export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)", nodes)
		}
	}
	if c.Rank < 0 || c.Rank >= c.WorldSize {
		return c, fmt.Errorf("distributed: %s=%d out of range for %s=%d", rank, c.Rank, world, c.WorldSize)
	}
	return c, nil
}

// envInt returns the integer in the environment variable name, or def
// when it is unset or empty.
func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("distributed: %s=%q: %w", name, v, err)
	}
	return n, nil
}
