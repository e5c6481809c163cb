package torch

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
)

// Scope owns the tensors created on its goroutine while it is the innermost
// open scope, and frees them all when it closes. A training step opens one,
// so every intermediate of forward, backward and the update dies at the end
// of the step without any call in user code.
//
// NewScope pins the calling goroutine to its OS thread until Close: libtorch
// keeps per-thread state (grad mode, caches) and a scope is found through
// the thread it was opened on. Tensors made by other goroutines (a data
// loader, say) never join it.
type Scope struct {
	parent  *Scope
	tid     int
	tensors []*Tensor
	closed  bool
}

var (
	openScopes atomic.Int32
	scopeByTID sync.Map // OS thread id -> innermost *Scope
)

// NewScope opens a scope nested in the current one, if any.
func NewScope() *Scope {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	s := &Scope{tid: tid}
	if p, ok := scopeByTID.Load(tid); ok {
		s.parent = p.(*Scope)
	}
	scopeByTID.Store(tid, s)
	openScopes.Add(1)
	return s
}

// WithScope runs f inside a new scope and closes it when f returns.
func WithScope(f func() error) error {
	s := NewScope()
	defer s.Close()
	return f()
}

// Close frees every tensor the scope still owns, including those of inner
// scopes left open, and unpins the goroutine. Closing twice is a no-op.
// Close must run on the goroutine that opened the scope.
func (s *Scope) Close() {
	if s.closed {
		return
	}
	if cur, ok := scopeByTID.Load(s.tid); ok {
		for inner := cur.(*Scope); inner != s && inner != nil; inner = inner.parent {
			inner.release()
		}
	}
	s.release()
	if s.parent != nil {
		scopeByTID.Store(s.tid, s.parent)
	} else {
		scopeByTID.Delete(s.tid)
	}
}

func (s *Scope) release() {
	if s.closed {
		return
	}
	s.closed = true
	for i := len(s.tensors) - 1; i >= 0; i-- {
		if t := s.tensors[i]; t != nil {
			t.scope = nil
			t.free()
		}
	}
	s.tensors = nil
	openScopes.Add(-1)
	runtime.UnlockOSThread()
}

// Len returns how many tensors the scope owns now.
func (s *Scope) Len() int {
	n := 0
	for _, t := range s.tensors {
		if t != nil {
			n++
		}
	}
	return n
}

// currentScope returns the innermost open scope of the calling thread.
func currentScope() *Scope {
	if openScopes.Load() == 0 {
		return nil
	}
	if s, ok := scopeByTID.Load(syscall.Gettid()); ok {
		return s.(*Scope)
	}
	return nil
}

func (s *Scope) adopt(t *Tensor) {
	t.scope = s
	t.scopeIndex = len(s.tensors)
	s.tensors = append(s.tensors, t)
}

func (s *Scope) disown(t *Tensor) {
	s.tensors[t.scopeIndex] = nil
	t.scope = nil
}
