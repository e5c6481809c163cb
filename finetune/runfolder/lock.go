package runfolder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockName is the lock file in a run folder: it holds the PID of the
// process writing the folder, which holds a flock on it. The kernel
// drops the flock when that process dies, so a crash never leaves the
// folder locked.
const lockName = ".lock"

// lock is a held lock on a run folder.
type lock struct {
	f    *os.File
	path string
}

// acquire locks dir for this process. A folder another process holds is
// refused with an error naming its PID. took is the PID a dead process
// left in the lock file, 0 if none.
func acquire(dir string) (l *lock, took int, err error) {
	path := filepath.Join(dir, lockName)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, 0, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			pid := readPID(f)
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, 0, fmt.Errorf("%s is in use by process %d", dir, pid)
			}
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		// The holder we waited for may have removed the file as it
		// released it: a lock on that unlinked file excludes nobody.
		held, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			took = readPID(f)
			if err := writePID(f); err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("%s: %w", path, err)
			}
			return &lock{f: f, path: path}, took, nil
		}
		f.Close()
	}
}

// release removes the lock file, then drops the lock.
func (l *lock) release() error {
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return pid
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
