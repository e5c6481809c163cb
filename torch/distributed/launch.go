package distributed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillGrace is how long Launch lets the other ranks stop after SIGTERM,
// once one failed or ctx was cancelled, before it kills them.
const KillGrace = 10 * time.Second

// Launch runs nproc copies of the command argv (argv[0] is the program)
// on this host as the ranks of one group, as torchrun --nproc-per-node
// does: each has the environment env (os.Environ() when nil) with
// RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1
// and MASTER_PORT, a free port, set; OMP_NUM_THREADS, unless env sets
// it, shares the CPUs among them. The children write to this process's
// standard output and error.
//
// Launch forwards SIGINT, SIGTERM and SIGHUP to the children (each runs
// in its own process group, so a terminal's Ctrl-C reaches them once,
// through Launch), then waits for them to stop. When a child fails
// otherwise, or ctx is cancelled, Launch sends the others SIGTERM and
// kills them after KillGrace. It returns the first failure, naming its
// rank, or nil when every child exits 0. The caller should not let the
// signals cancel ctx.
func Launch(ctx context.Context, nproc int, argv []string, env []string) error {
	if nproc < 1 {
		return fmt.Errorf("distributed: launch: %d processes, want at least 1", nproc)
	}
	if len(argv) == 0 {
		return errors.New("distributed: launch: no command")
	}
	if env == nil {
		env = os.Environ()
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("distributed: launch: %w", err)
	}
	base := withoutVars(env, "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
	if !hasVar(env, "OMP_NUM_THREADS") {
		base = append(base, "OMP_NUM_THREADS="+strconv.Itoa(max(1, runtime.NumCPU()/nproc)))
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	type exit struct {
		rank int
		err  error
	}
	exits := make(chan exit, nproc)
	var procs []*os.Process
	signalAll := func(s syscall.Signal) {
		for _, p := range procs {
			_ = syscall.Kill(-p.Pid, s) // the child's process group
		}
	}
	var first error
	for rank := range nproc {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(append([]string(nil), base...),
			"RANK="+strconv.Itoa(rank), "LOCAL_RANK="+strconv.Itoa(rank),
			"WORLD_SIZE="+strconv.Itoa(nproc), "LOCAL_WORLD_SIZE="+strconv.Itoa(nproc),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			first = fmt.Errorf("distributed: launch: rank %d: %w", rank, err)
			break
		}
		procs = append(procs, cmd.Process)
		go func() { exits <- exit{rank, cmd.Wait()} }()
	}

	var kill <-chan time.Time // fires KillGrace after the first failure
	stop := func() {
		signalAll(syscall.SIGTERM)
		kill = time.After(KillGrace)
	}
	if first != nil {
		stop()
	}
	// After a forwarded signal every rank is stopping on its own (rank 0
	// writing its checkpoint): a rank that exits with an error then is
	// not a reason to terminate the others.
	signalled := false
	done := ctx.Done()
	for running := len(procs); running > 0; {
		select {
		case e := <-exits:
			running--
			if e.err != nil && first == nil {
				first = fmt.Errorf("distributed: launch: rank %d: %w", e.rank, e.err)
				if !signalled {
					stop()
				}
			}
		case s := <-sigs:
			signalled = true
			signalAll(s.(syscall.Signal))
		case <-done:
			done = nil
			if first == nil {
				first = fmt.Errorf("distributed: launch: %w", ctx.Err())
				stop()
			}
		case <-kill:
			signalAll(syscall.SIGKILL)
		}
	}
	return first
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// withoutVars returns env without the variables named.
func withoutVars(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

func hasVar(env []string, name string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}
