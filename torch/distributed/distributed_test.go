package distributed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/finetune-go/finetune/torch"
	"github.com/finetune-go/finetune/torch/nn"
	"github.com/finetune-go/finetune/torch/optim"
)

// The multi-process tests run this test binary again as the ranks:
// workerJob selects what TestWorker does there, workerDir where it
// writes.
const (
	workerJob = "FINETUNE_DIST_TEST_JOB"
	workerDir = "FINETUNE_DIST_TEST_DIR"
)

// TestWorker is a rank of the multi-process tests; on its own it skips.
func TestWorker(t *testing.T) {
	job := os.Getenv(workerJob)
	if job == "" {
		t.Skip("a rank of the multi-process tests, run by them")
	}
	if job == "signal" {
		if err := signalWorker(os.Getenv(workerDir)); err != nil {
			t.Fatal(err)
		}
		return
	}
	torch.SetNumThreads(1)
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := Init(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	switch job {
	case "train":
		err = trainWorker(pg, os.Getenv(workerDir))
	case "die", "hang":
		err = failWorker(pg, job)
	case "exit":
		err = exitWorker(pg)
	default:
		err = fmt.Errorf("unknown job %q", job)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// The data-parallel run trains a small convolutional network on a batch
// of batchSize samples for trainSteps SGD steps.
const (
	batchSize  = 8
	trainSteps = 5
	dataSeed   = 7
	modelSeed  = 11
)

func newTinyNet(seed uint64) (*nn.Sequential, error) {
	torch.ManualSeed(seed)
	conv, err := nn.NewConv2d(nn.Conv2dConfig{InChannels: 1, OutChannels: 4, Kernel: [2]int64{3, 3}, Padding: [2]int64{1, 1}, Bias: true})
	if err != nil {
		return nil, err
	}
	fc, err := nn.NewLinear(4*6*6, 3, true)
	if err != nil {
		return nil, err
	}
	return nn.NewSequential(conv, nn.NewReLU(false), nn.NewFlatten(), fc), nil
}

// trainData is the whole batch, the same in every process.
func trainData() (x, y *torch.Tensor, err error) {
	torch.ManualSeed(dataSeed)
	if x, err = torch.Randn([]int64{batchSize, 1, 6, 6}); err != nil {
		return nil, nil, err
	}
	if y, err = torch.Randint(0, 3, []int64{batchSize}); err != nil {
		return nil, nil, err
	}
	return x.Keep(), y.Keep(), nil
}

// train runs trainSteps steps of net. With pg, each rank takes its Shard
// of the step's order of the batch and the gradients are averaged;
// without, the whole batch is used. It returns each step's loss over the
// whole batch.
func train(net *nn.Sequential, pg *ProcessGroup) ([]float64, error) {
	x, y, err := trainData()
	if err != nil {
		return nil, err
	}
	params := values(nn.NamedParameters(net))
	opt, err := optim.NewSGD(optim.ParamGroup{Params: params, LR: 0.1, Momentum: 0.9})
	if err != nil {
		return nil, err
	}
	var reducer *GradReducer
	if pg != nil {
		reducer = NewGradReducer(pg, 256) // several buckets
		defer reducer.Free()
	}
	var losses []float64
	for step := range trainSteps {
		order := rand.New(rand.NewPCG(dataSeed, uint64(step))).Perm(batchSize)
		if pg != nil {
			order = Shard(order, pg.Rank(), pg.Size())
		}
		loss, err := trainStep(net, opt, reducer, params, x, y, order)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", step, err)
		}
		if pg != nil {
			sums, err := AllReduceValues(pg, Sum, loss*float64(len(order)), float64(len(order)))
			if err != nil {
				return nil, err
			}
			loss = sums[0] / sums[1]
		}
		losses = append(losses, loss)
	}
	return losses, nil
}

func trainStep(net *nn.Sequential, opt optim.Optimizer, reducer *GradReducer, params []*torch.Tensor, x, y *torch.Tensor, order []int) (float64, error) {
	s := torch.NewScope()
	defer s.Close()
	idx := make([]int64, len(order))
	for i, o := range order {
		idx[i] = int64(o)
	}
	it, err := torch.FromSlice(idx)
	if err != nil {
		return 0, err
	}
	xb, err := x.IndexSelect(0, it)
	if err != nil {
		return 0, err
	}
	yb, err := y.IndexSelect(0, it)
	if err != nil {
		return 0, err
	}
	logits, err := net.Forward(xb)
	if err != nil {
		return 0, err
	}
	loss, err := torch.CrossEntropy(logits, yb, torch.LossOptions{})
	if err != nil {
		return 0, err
	}
	if err := opt.ZeroGrad(); err != nil {
		return 0, err
	}
	if err := loss.Backward(); err != nil {
		return 0, err
	}
	if reducer != nil {
		if err := reducer.Reduce(params); err != nil {
			return 0, err
		}
	}
	if err := opt.Step(); err != nil {
		return 0, err
	}
	return loss.Item()
}

// trainWorker checks the collectives, then trains from rank 0's weights
// (each rank initialises its own differently) and, on rank 0 only, writes
// the weights and losses.
func trainWorker(pg *ProcessGroup, dir string) error {
	if err := checkCollectives(pg); err != nil {
		return err
	}
	net, err := newTinyNet(modelSeed + uint64(pg.Rank()))
	if err != nil {
		return err
	}
	if err := pg.BroadcastModule(net, 0); err != nil {
		return err
	}
	losses, err := train(net, pg)
	if err != nil {
		return err
	}
	// Every rank must end with the same weights.
	flat, err := flatWeights(net)
	if err != nil {
		return err
	}
	all, err := pg.AllGather(flat)
	if err != nil {
		return err
	}
	for r, w := range all {
		if err := sameValues(w, flat); err != nil {
			return fmt.Errorf("rank %d's weights differ from rank %d's: %w", r, pg.Rank(), err)
		}
	}
	if pg.Rank() == 0 {
		meta, _ := json.Marshal(losses)
		path := filepath.Join(dir, fmt.Sprintf("rank%d.safetensors", pg.Rank()))
		if err := nn.WriteSafetensors(path, nn.StateDict(net), map[string]string{"losses": string(meta)}); err != nil {
			return err
		}
	}
	return pg.Barrier()
}

// checkCollectives checks each collective against the values expected of
// a group of two or more ranks.
func checkCollectives(pg *ProcessGroup) error {
	r := float64(pg.Rank())
	// fold reduces rank i's value f(i+1) over the ranks.
	fold := func(op ReduceOp, f func(float64) float64) float64 {
		acc := f(1)
		for i := 2; i <= pg.Size(); i++ {
			v := f(float64(i))
			switch op {
			case Sum, Avg:
				acc += v
			case Product:
				acc *= v
			case Min:
				acc = math.Min(acc, v)
			case Max:
				acc = math.Max(acc, v)
			}
		}
		if op == Avg {
			acc /= float64(pg.Size())
		}
		return acc
	}
	neg := func(v float64) float64 { return -v }
	for op := Sum; op <= Max; op++ {
		got, err := AllReduceValues(pg, op, r+1, -(r + 1))
		if err != nil {
			return err
		}
		want := []float64{fold(op, func(v float64) float64 { return v }), fold(op, neg)}
		if !slices.Equal(got, want) {
			return fmt.Errorf("allreduce op %d: got %v, want %v", op, got, want)
		}
	}
	// A non-contiguous tensor goes through a copy and comes back.
	s := torch.NewScope()
	defer s.Close()
	m, err := torch.Full([]int64{2, 3}, r+1)
	if err != nil {
		return err
	}
	mt, err := m.Transpose(0, 1)
	if err != nil {
		return err
	}
	if err := pg.AllReduce([]*torch.Tensor{mt}, Sum); err != nil {
		return err
	}
	vals, err := m.Float32s()
	if err != nil {
		return err
	}
	for _, v := range vals {
		if want := fold(Sum, func(v float64) float64 { return v }); float64(v) != want {
			return fmt.Errorf("allreduce of a transposed tensor: got %v, want all %v", vals, want)
		}
	}
	got, err := BroadcastValues(pg, pg.Size()-1, int64(pg.Rank()))
	if err != nil {
		return err
	}
	if got[0] != int64(pg.Size()-1) {
		return fmt.Errorf("broadcast from the last rank: got %d", got[0])
	}
	me, err := torch.Full([]int64{2}, r)
	if err != nil {
		return err
	}
	all, err := pg.AllGather(me)
	if err != nil {
		return err
	}
	for i, t := range all {
		v, err := t.Float32s()
		if err != nil {
			return err
		}
		if !slices.Equal(v, []float32{float32(i), float32(i)}) {
			return fmt.Errorf("allgather: rank %d's tensor is %v", i, v)
		}
	}
	return nil
}

func flatWeights(m nn.Module) (*torch.Tensor, error) {
	var parts []*torch.Tensor
	for _, e := range nn.StateDict(m) {
		f, err := e.Value.Reshape(-1)
		if err != nil {
			return nil, err
		}
		parts = append(parts, f)
	}
	return torch.Cat(parts, 0)
}

func sameValues(a, b *torch.Tensor) error {
	av, err := a.Float32s()
	if err != nil {
		return err
	}
	bv, err := b.Float32s()
	if err != nil {
		return err
	}
	if !slices.Equal(av, bv) {
		return errors.New("values differ")
	}
	return nil
}

// failWorker all-reduces until the last rank dies (die) or stops
// answering (hang) at step 3.
func failWorker(pg *ProcessGroup, job string) error {
	big, err := torch.Zeros([]int64{4 << 20})
	if err != nil {
		return err
	}
	last := pg.Size() - 1
	if v := os.Getenv("FINETUNE_DIST_TEST_VICTIM"); v != "" {
		last, _ = strconv.Atoi(v)
	}
	for step := range 1000 {
		if step == 3 && pg.Rank() == last {
			if job == "hang" {
				time.Sleep(time.Hour)
			}
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		// Large messages: the survivor is writing when its peer goes,
		// which raises SIGPIPE in Gloo's threads.
		if err := pg.AllReduce([]*torch.Tensor{big}, Sum); err != nil {
			return err
		}
	}
	return errors.New("the collectives went on after the peer stopped")
}

// exitWorker fails at once on the last rank; the others wait in a
// barrier that only Launch's stopping them ends.
func exitWorker(pg *ProcessGroup) error {
	if pg.Rank() == pg.Size()-1 {
		os.Exit(3)
	}
	return pg.Barrier()
}

// signalWorker says it is ready and waits for SIGTERM; then rank 1 fails
// at once and rank 0 takes a moment to write its file, as a trainer
// writes its checkpoint when interrupted, during which a second SIGTERM
// would kill it.
func signalWorker(dir string) error {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	rank := os.Getenv("RANK")
	if err := os.WriteFile(filepath.Join(dir, "ready"+rank), nil, 0o644); err != nil {
		return err
	}
	select {
	case <-term:
	case <-time.After(time.Minute):
		return errors.New("no SIGTERM")
	}
	signal.Reset(syscall.SIGTERM) // as finetune's CLI: a second one kills
	if rank != "0" {
		os.Exit(3)
	}
	time.Sleep(time.Second)
	return os.WriteFile(filepath.Join(dir, "checkpoint"), nil, 0o644)
}

// workerArgs runs TestWorker alone in this test binary.
func workerArgs() []string { return []string{os.Args[0], "-test.run=^TestWorker$", "-test.v"} }

func TestDataParallelMatchesOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	dir := t.TempDir()
	env := append(os.Environ(), workerJob+"=train", workerDir+"="+dir, "FINETUNE_DIST_TIMEOUT=60s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := Launch(ctx, 2, workerArgs(), env); err != nil {
		t.Fatal(err)
	}
	t.Logf("two ranks trained in %v", time.Since(start).Round(time.Millisecond))

	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || filepath.Base(files[0]) != "rank0.safetensors" {
		t.Fatalf("the ranks wrote %v, want rank0.safetensors alone", files)
	}
	got, meta, err := nn.ReadSafetensors(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var gotLosses []float64
	if err := json.Unmarshal([]byte(meta["losses"]), &gotLosses); err != nil {
		t.Fatal(err)
	}

	net, err := newTinyNet(modelSeed)
	if err != nil {
		t.Fatal(err)
	}
	wantLosses, err := train(net, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range wantLosses {
		if d := math.Abs(gotLosses[i] - wantLosses[i]); d > 1e-6*math.Abs(wantLosses[i]) {
			t.Errorf("step %d: loss %v over the ranks, %v in one process", i, gotLosses[i], wantLosses[i])
		}
	}
	want := nn.StateDict(net)
	if len(got) != len(want) {
		t.Fatalf("%d tensors written, want %d", len(got), len(want))
	}
	worst := 0.0
	for i, w := range want {
		gv, err := got[i].Value.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		wv, err := w.Value.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		scale := 0.0
		for _, v := range wv {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for j := range wv {
			worst = math.Max(worst, math.Abs(float64(gv[j]-wv[j]))/scale)
		}
	}
	t.Logf("largest difference from one process: %.2g of the tensor's largest weight", worst)
	if worst > 1e-6 {
		t.Errorf("weights differ from one process's by %.2g relative, want ≤ 1e-6", worst)
	}
}

// TestLostPeerFailsTheOthers kills (or freezes) one rank mid-training and
// checks that the other fails with c10d's message within the timeout
// instead of hanging.
func TestLostPeerFailsTheOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	for _, tc := range []struct {
		job    string
		victim int // the rank that stops
	}{{"die", 1}, {"die", 0}, {"hang", 1}} {
		t.Run(fmt.Sprintf("%s-rank%d", tc.job, tc.victim), func(t *testing.T) {
			port, err := freePort()
			if err != nil {
				t.Fatal(err)
			}
			survivor := 1 - tc.victim
			var cmds [2]*exec.Cmd
			var outs [2]strings.Builder
			for rank := range 2 {
				cmd := exec.Command(os.Args[0], workerArgs()[1:]...)
				cmd.Env = append(os.Environ(), workerJob+"="+tc.job, "FINETUNE_DIST_TIMEOUT=5s",
					"FINETUNE_DIST_TEST_VICTIM="+strconv.Itoa(tc.victim),
					"RANK="+strconv.Itoa(rank), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
				cmd.Stdout, cmd.Stderr = &outs[rank], &outs[rank]
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				cmds[rank] = cmd
			}
			defer func() {
				_ = cmds[tc.victim].Process.Kill()
				_ = cmds[tc.victim].Wait()
			}()
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- cmds[survivor].Wait() }()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				_ = cmds[survivor].Process.Kill()
				t.Fatalf("rank %d still runs 30s after rank %d stopped", survivor, tc.victim)
			}
			elapsed := time.Since(start)
			out := outs[survivor].String()
			if err == nil {
				t.Fatalf("rank %d succeeded:\n%s", survivor, out)
			}
			msg := fmt.Sprintf("distributed: rank %d of 2: allreduce (timeout 5s):", survivor)
			if !strings.Contains(out, msg) {
				t.Fatalf("rank %d's output lacks %q:\n%s", survivor, msg, out)
			}
			line := out[strings.Index(out, msg):]
			line, _, _ = strings.Cut(line, "\n")
			t.Logf("rank %d failed after %v: %s", survivor, elapsed.Round(time.Millisecond), line)
		})
	}
}

func TestLaunchStopsTheOthersWhenOneFails(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	start := time.Now()
	env := append(os.Environ(), workerJob+"=exit", "FINETUNE_DIST_TIMEOUT=60s")
	err := Launch(context.Background(), 2, workerArgs(), env)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(err.Error(), "rank 1") {
		t.Fatalf("Launch returned %v, want rank 1's exit status 3", err)
	}
	if d := time.Since(start); d > KillGrace {
		t.Errorf("Launch took %v: rank 0 was not stopped at once", d)
	}
}

func TestLaunchForwardsSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	dir := t.TempDir()
	env := append(os.Environ(), workerJob+"=signal", workerDir+"="+dir)
	done := make(chan error, 1)
	go func() { done <- Launch(context.Background(), 2, workerArgs(), env) }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		_, err0 := os.Stat(filepath.Join(dir, "ready0"))
		_, err1 := os.Stat(filepath.Join(dir, "ready1"))
		if err0 == nil && err1 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ranks did not start")
		}
	}
	// Launch, which is running, takes the signal instead of this process.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "rank 1") {
		t.Errorf("Launch returned %v, want rank 1's failure", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint")); err != nil {
		t.Errorf("rank 0 was stopped before it wrote its checkpoint: %v", err)
	}
}

func TestOneProcessGroup(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := Init(context.Background(), Config{WorldSize: 1, MasterPort: port, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if pg.Rank() != 0 || pg.Size() != 1 || pg.Backend() != "gloo" || pg.Device() != torch.CPU {
		t.Errorf("rank %d of %d, %s on %v", pg.Rank(), pg.Size(), pg.Backend(), pg.Device())
	}
	got, err := AllReduceValues(pg, Avg, 3.0, 5.0)
	if err != nil || !slices.Equal(got, []float64{3, 5}) {
		t.Errorf("AllReduceValues = %v, %v", got, err)
	}
	if err := pg.Barrier(); err != nil {
		t.Error(err)
	}
	if err := pg.AllReduce([]*torch.Tensor{nil}, Sum); !errors.Is(err, torch.ErrNilTensor) {
		t.Errorf("AllReduce of nil: %v", err)
	}
	if err := pg.Broadcast(nil, 1); err == nil {
		t.Error("Broadcast from rank 1 of 1 succeeded")
	}
	pg.Close()
	pg.Close()
	if err := pg.Barrier(); !errors.Is(err, ErrClosed) {
		t.Errorf("Barrier after Close: %v", err)
	}
}

func TestInitRejectsBadConfigs(t *testing.T) {
	for _, c := range []Config{
		{WorldSize: 0},
		{Rank: 2, WorldSize: 2},
		{WorldSize: 2, MasterPort: 70000},
		{WorldSize: 2, Backend: "mpi"},
		{WorldSize: 2, Timeout: -time.Second},
	} {
		if _, err := Init(context.Background(), c); err == nil {
			t.Errorf("Init(%+v) succeeded", c)
		}
	}
}

func TestInitTimesOutWithoutPeers(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Init(context.Background(), Config{WorldSize: 2, MasterPort: port, Timeout: 2 * time.Second})
	var e *Error
	if !errors.As(err, &e) || e.Op != "init" {
		t.Fatalf("Init without the other rank: %v", err)
	}
	if want := "only 1 of 2 ranks arrived"; !strings.Contains(err.Error(), want) {
		t.Errorf("Init without the other rank: %v, want %q", err, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Init failed after %v, with a 2s timeout", d)
	}
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	_, err = Init(context.Background(), Config{Rank: 1, WorldSize: 2, MasterPort: port, Timeout: 2 * time.Second})
	if want := "rank 0 did not open the rendezvous"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("rank 1 without rank 0: %v, want %q", err, want)
	}
	if got, want := (Config{WorldSize: 2, MasterPort: port}).Rendezvous(), fmt.Sprintf("127.0.0.1:%d", port); got != want {
		t.Errorf("Rendezvous() = %q, want %q", got, want)
	}

	if port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := Init(ctx, Config{WorldSize: 2, MasterPort: port, Timeout: time.Minute}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Init with a cancelled context: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Init returned %v after its context's deadline", d)
	}
}
