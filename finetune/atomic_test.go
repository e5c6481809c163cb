package finetune

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/stretchr/testify/require"
)

// checkpointOf makes a checkpoint-sized set of tensors whose values all
// equal generation, so a reader can tell versions apart.
func checkpointOf(t testing.TB, generation int) []nn.Named[*torch.Tensor] {
	var out []nn.Named[*torch.Tensor]
	for i := range 8 {
		v := must[*torch.Tensor](t)(torch.Full([]int64{1 << 20}, float64(generation)))
		out = append(out, nn.Named[*torch.Tensor]{Name: fmt.Sprintf("t%d", i), Value: v})
	}
	return out
}

// TestAtomicWriterProcess is the child of TestCheckpointWriteSurvivesKill:
// it rewrites the checkpoint forever, one generation after another.
func TestAtomicWriterProcess(t *testing.T) {
	path := os.Getenv("FINETUNE_TEST_ATOMIC_PATH")
	if path == "" {
		t.Skip("run by TestCheckpointWriteSurvivesKill")
	}
	for gen := 2; ; gen++ {
		s := torch.NewScope()
		require.NoError(t, nn.WriteSafetensors(path, checkpointOf(t, gen), map[string]string{"generation": strconv.Itoa(gen)}))
		s.Close()
	}
}

// TestCheckpointWriteSurvivesKill kills a process in the middle of
// checkpoint writes, several times: the file is always a complete
// checkpoint, the old one or a new one, never a torn mix.
func TestCheckpointWriteSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "last.safetensors")
	require.NoError(t, nn.WriteSafetensors(path, checkpointOf(t, 1), map[string]string{"generation": "1"}))
	for i, delay := range []time.Duration{700 * time.Millisecond, 1100 * time.Millisecond, 1500 * time.Millisecond} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAtomicWriterProcess$")
		cmd.Env = append(os.Environ(), "FINETUNE_TEST_ATOMIC_PATH="+path)
		require.NoError(t, cmd.Start())
		time.Sleep(delay)
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()

		entries, md, err := nn.ReadSafetensors(path)
		require.NoError(t, err, "kill %d left an unreadable checkpoint", i)
		gen, err := strconv.Atoi(md["generation"])
		require.NoError(t, err)
		require.Len(t, entries, 8)
		for _, e := range entries {
			v := must[[]float32](t)(e.Value.Float32s())
			require.Equal(t, float32(gen), v[0], "%s of generation %d", e.Name, gen)
			require.Equal(t, float32(gen), v[len(v)-1], "%s of generation %d", e.Name, gen)
		}
		t.Logf("kill %d after %v: generation %d intact", i, delay, gen)
	}
}
