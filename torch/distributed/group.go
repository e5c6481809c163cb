package distributed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/finetune-go/finetune/torch"
)

// DefaultTimeout bounds joining a group and each collective when
// Config.Timeout is zero.
const DefaultTimeout = 5 * time.Minute

// DefaultPort is the rendezvous port when Config.MasterPort is zero, as
// torchrun's.
const DefaultPort = 29500

// Config describes this process's place in a group.
type Config struct {
	Rank      int // this process, 0 ≤ Rank < WorldSize; rank 0 serves the rendezvous
	WorldSize int // the number of processes
	LocalRank int // this process among those of its host: its GPU
	// MasterAddr and MasterPort are where rank 0 serves the TCPStore
	// rendezvous; "" means 127.0.0.1 and 0 DefaultPort.
	MasterAddr string
	MasterPort int
	// Backend is "gloo", "nccl", or "" for NCCL when it is compiled in
	// and CUDA is available, else Gloo.
	Backend string
	// Timeout bounds the rendezvous and every collective: a peer that
	// died or stopped answering makes them fail after at most this long.
	// Zero means DefaultTimeout.
	Timeout time.Duration
}

// Rendezvous returns where the ranks of c meet, HOST:PORT with the
// defaults filled in, for a message that says what a rank waits for.
func (c Config) Rendezvous() string {
	c = c.withRendezvous()
	return net.JoinHostPort(c.MasterAddr, strconv.Itoa(c.MasterPort))
}

// withRendezvous fills in the defaults of MasterAddr and MasterPort.
func (c Config) withRendezvous() Config {
	if c.MasterAddr == "" {
		c.MasterAddr = "127.0.0.1"
	}
	if c.MasterPort == 0 {
		c.MasterPort = DefaultPort
	}
	return c
}

// ReduceOp is a reduction of AllReduce.
type ReduceOp int

// The reductions, in c10d's order.
const (
	Sum ReduceOp = iota
	// Avg is the sum divided by the group's size; on Gloo, which lacks
	// it, AllReduce sums and divides.
	Avg
	Product
	Min
	Max
)

// ErrClosed is returned by the methods of a closed ProcessGroup.
var ErrClosed = errors.New("distributed: process group is closed")

// Error is a failure of the rendezvous or of a collective. Msg is c10d's
// message: a peer that died shows as a closed or reset connection, one
// that stopped answering as a timeout.
type Error struct {
	Op      string // "init", "allreduce", "broadcast", "allgather" or "barrier"
	Rank    int    // this process's rank
	Size    int    // the number of processes
	Timeout time.Duration
	Msg     string
}

func (e *Error) Error() string {
	return fmt.Sprintf("distributed: rank %d of %d: %s (timeout %v): %s", e.Rank, e.Size, e.Op, e.Timeout, e.Msg)
}

// ProcessGroup is this process's membership of a group, through which it
// runs collectives with the others. Every rank must issue the same
// collectives, on tensors of the same shapes and types, in the same
// order. Its methods are safe for concurrent use, but concurrent
// collectives run in an order that differs between ranks.
type ProcessGroup struct {
	cfg    Config
	device torch.Device

	mu sync.Mutex
	g  *group // nil once closed
}

// Init joins the group c describes and returns once every rank has: rank
// 0 serves the rendezvous (a TCPStore) and the others connect to it,
// then the backend connects every pair. It fails after c.Timeout if some
// rank does not come, saying how many did. Cancelling ctx makes Init
// return at once; the rendezvous in progress is abandoned.
//
// Init stops SIGPIPE from killing the process (by signal.Notify on a
// channel nobody reads): a peer that dies makes Gloo's threads write to a
// closed socket, which must come back as an error, as in Python, which
// ignores SIGPIPE. Writes to a closed standard output then fail with
// EPIPE instead.
//
// Gloo's network interfaces are those named in GLOO_SOCKET_IFNAME
// (comma-separated), as with torch.distributed; without it, the loopback
// interface when MasterAddr is a loopback address, else the address this
// host's name resolves to.
func Init(ctx context.Context, c Config) (*ProcessGroup, error) {
	c, err := c.resolve()
	if err != nil {
		return nil, err
	}
	sigpipeOnce.Do(func() { signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE) })
	dev := torch.CPU
	if c.Backend == "nccl" {
		dev = torch.CUDA(c.LocalRank)
	}
	type result struct {
		g   *group
		err error
	}
	done := make(chan result, 1)
	go func() {
		g, err := newGroup(c.Backend, c.MasterAddr, c.MasterPort, c.Rank, c.WorldSize, c.Timeout,
			os.Getenv("GLOO_SOCKET_IFNAME"), isLoopback(c.MasterAddr))
		done <- result{g, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, &Error{Op: "init", Rank: c.Rank, Size: c.WorldSize, Timeout: c.Timeout,
				Msg: fmt.Sprintf("%s (%s backend, rendezvous at %s:%d)", r.err, c.Backend, c.MasterAddr, c.MasterPort)}
		}
		return &ProcessGroup{cfg: c, device: dev, g: r.g}, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.g != nil {
				r.g.free()
			}
		}()
		return nil, fmt.Errorf("distributed: rank %d: init: %w", c.Rank, ctx.Err())
	}
}

var sigpipeOnce sync.Once

// resolve checks c and fills in its defaults.
func (c Config) resolve() (Config, error) {
	switch {
	case c.WorldSize < 1:
		return c, fmt.Errorf("distributed: world size %d, want at least 1", c.WorldSize)
	case c.Rank < 0 || c.Rank >= c.WorldSize:
		return c, fmt.Errorf("distributed: rank %d out of range [0, %d)", c.Rank, c.WorldSize)
	case c.LocalRank < 0:
		return c, fmt.Errorf("distributed: negative local rank %d", c.LocalRank)
	case c.MasterPort < 0 || c.MasterPort > 65535:
		return c, fmt.Errorf("distributed: master port %d out of range", c.MasterPort)
	case c.Timeout < 0:
		return c, fmt.Errorf("distributed: negative timeout %v", c.Timeout)
	}
	c = c.withRendezvous()
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch c.Backend {
	case "":
		c.Backend = "gloo"
		if NCCLBuilt() && torch.CUDAIsAvailable() {
			c.Backend = "nccl"
		}
	case "gloo":
	case "nccl":
		if !NCCLBuilt() {
			return c, errors.New("distributed: the nccl backend is not compiled in (see the package documentation); use gloo")
		}
	default:
		return c, fmt.Errorf("distributed: unknown backend %q, want gloo or nccl", c.Backend)
	}
	return c, nil
}

func isLoopback(addr string) bool {
	if addr == "localhost" {
		return true
	}
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsLoopback()
}

// Rank returns this process's rank.
func (pg *ProcessGroup) Rank() int { return pg.cfg.Rank }

// Size returns the number of processes in the group.
func (pg *ProcessGroup) Size() int { return pg.cfg.WorldSize }

// LocalRank returns this process's rank among those of its host.
func (pg *ProcessGroup) LocalRank() int { return pg.cfg.LocalRank }

// Backend returns "gloo" or "nccl".
func (pg *ProcessGroup) Backend() string { return pg.cfg.Backend }

// Timeout returns the bound on each collective.
func (pg *ProcessGroup) Timeout() time.Duration { return pg.cfg.Timeout }

// Device returns where the backend takes tensors: the CPU for Gloo (which
// also takes CUDA tensors, through the host), cuda:LocalRank for NCCL.
func (pg *ProcessGroup) Device() torch.Device { return pg.device }

// do runs f on the open group and turns its failure into an *Error.
func (pg *ProcessGroup) do(op string, f func(g *group) error) error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.g == nil {
		return ErrClosed
	}
	if err := f(pg.g); err != nil {
		if errors.Is(err, torch.ErrNilTensor) || errors.Is(err, torch.ErrFreed) {
			return fmt.Errorf("distributed: %s: %w", op, err)
		}
		return &Error{Op: op, Rank: pg.cfg.Rank, Size: pg.cfg.WorldSize, Timeout: pg.cfg.Timeout, Msg: err.Error()}
	}
	return nil
}

// AllReduce replaces each tensor, on every rank, by the reduction op of
// its values on all ranks. The tensors are reduced one by one (each is a
// separate collective, all in flight together), so they may differ in
// shape and type; a non-contiguous tensor goes through a contiguous copy.
func (pg *ProcessGroup) AllReduce(ts []*torch.Tensor, op ReduceOp) error {
	if op < Sum || op > Max {
		return fmt.Errorf("distributed: allreduce: unknown op %d", op)
	}
	return pg.do("allreduce", func(g *group) error { return g.allReduce(ts, op, pg.cfg.Timeout) })
}

// Broadcast copies root's values of the tensors into those of every other
// rank.
func (pg *ProcessGroup) Broadcast(ts []*torch.Tensor, root int) error {
	if root < 0 || root >= pg.cfg.WorldSize {
		return fmt.Errorf("distributed: broadcast: root %d out of range [0, %d)", root, pg.cfg.WorldSize)
	}
	return pg.do("broadcast", func(g *group) error { return g.broadcast(ts, root, pg.cfg.Timeout) })
}

// AllGather returns every rank's t, in rank order, as new tensors (which
// join the current scope). t must have the same shape and type on every
// rank.
func (pg *ProcessGroup) AllGather(t *torch.Tensor) ([]*torch.Tensor, error) {
	var out []*torch.Tensor
	err := pg.do("allgather", func(g *group) error {
		var err error
		out, err = g.allGather(t, pg.cfg.WorldSize, pg.cfg.Timeout)
		return err
	})
	return out, err
}

// Barrier returns once every rank has called it.
func (pg *ProcessGroup) Barrier() error {
	return pg.do("barrier", func(g *group) error { return g.barrier(pg.cfg.Timeout) })
}

// Close leaves the group and releases its connections; rank 0's
// rendezvous server stops with it, so rank 0 should close last (or
// after a Barrier). Closing twice is a no-op.
func (pg *ProcessGroup) Close() {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.g != nil {
		pg.g.free()
		pg.g = nil
	}
}
