package distributed

import (
	"os"
	"strings"
	"testing"
	"time"
)

// distVars are the variables FromEnv reads.
var distVars = []string{
	"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
	"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NNODES",
	"FINETUNE_DIST_BACKEND", "FINETUNE_DIST_TIMEOUT",
}

// setEnv clears distVars, then sets vars ("NAME=value") for the test.
func setEnv(t *testing.T, vars ...string) {
	for _, name := range distVars {
		t.Setenv(name, "") // restored after the test
		os.Unsetenv(name)
	}
	for _, kv := range vars {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}
}

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars []string
		want Config
	}{
		{"alone", nil, Config{WorldSize: 1}},
		{"torchrun", []string{"RANK=3", "WORLD_SIZE=8", "LOCAL_RANK=1", "MASTER_ADDR=10.0.0.1", "MASTER_PORT=1234"},
			Config{Rank: 3, WorldSize: 8, LocalRank: 1, MasterAddr: "10.0.0.1", MasterPort: 1234}},
		{"slurm", []string{"SLURM_PROCID=5", "SLURM_NTASKS=8", "SLURM_LOCALID=1", "SLURM_NNODES=2", "MASTER_ADDR=node01"},
			Config{Rank: 5, WorldSize: 8, LocalRank: 1, MasterAddr: "node01"}},
		{"slurm on one node", []string{"SLURM_PROCID=1", "SLURM_NTASKS=2", "SLURM_LOCALID=1", "SLURM_NNODES=1"},
			Config{Rank: 1, WorldSize: 2, LocalRank: 1}},
		{"RANK before Slurm", []string{"RANK=0", "WORLD_SIZE=2", "SLURM_PROCID=7", "SLURM_NTASKS=9"},
			Config{Rank: 0, WorldSize: 2}},
		{"backend and timeout", []string{"RANK=0", "WORLD_SIZE=2", "FINETUNE_DIST_BACKEND=gloo", "FINETUNE_DIST_TIMEOUT=90s"},
			Config{WorldSize: 2, Backend: "gloo", Timeout: 90 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setEnv(t, tc.vars...)
			got, err := FromEnv()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("FromEnv() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFromEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		vars []string
		want string
	}{
		{[]string{"RANK=1"}, "WORLD_SIZE"},
		{[]string{"RANK=x", "WORLD_SIZE=2"}, "RANK"},
		{[]string{"RANK=2", "WORLD_SIZE=2"}, "out of range"},
		{[]string{"RANK=0", "WORLD_SIZE=2", "MASTER_PORT=http"}, "MASTER_PORT"},
		{[]string{"RANK=0", "WORLD_SIZE=2", "FINETUNE_DIST_TIMEOUT=5"}, "FINETUNE_DIST_TIMEOUT"},
		{[]string{"SLURM_PROCID=0", "SLURM_NTASKS=8", "SLURM_NNODES=2"}, "MASTER_ADDR"},
	} {
		setEnv(t, tc.vars...)
		if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: FromEnv error %v, want one about %s", tc.vars, err, tc.want)
		}
	}
}
