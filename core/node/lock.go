package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// LockFileName is the file in the data directory whose lock says a node
// runs there; it holds that node's pid.
const LockFileName = "skein.lock"

// ErrDataDirInUse is matched (errors.Is) by an *InUseError: another node
// (or `skein plugins verify`) holds the data directory.
var ErrDataDirInUse = errors.New("data directory in use")

// InUseError says which process holds a data directory.
type InUseError struct {
	Dir string
	// PID is the holder's process id (0 if it could not be read).
	PID int
}

func (e *InUseError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("the node at %s is running: stop it first, or use another --data-dir", e.Dir)
	}
	return fmt.Sprintf("the node at %s is running (pid %d): stop it first, or use another --data-dir", e.Dir, e.PID)
}

// Is makes errors.Is(err, ErrDataDirInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrDataDirInUse }

// LockDataDir takes the data directory dir (created 0700 if missing) for
// this process until release: an exclusive flock on dir/skein.lock, which
// then holds this pid. The kernel drops the lock when the process dies,
// so a node killed with -9 leaves nothing to clean up. A directory already
// held is an *InUseError naming the holder's pid.
func LockDataDir(dir string) (release func() error, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := os.ReadFile(path)
			pid, _ := strconv.Atoi(string(bytes.TrimSpace(b)))
			return nil, &InUseError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("data directory lock %s: %w", path, err)
	}
	if err := errors.Join(f.Truncate(0), writeAt0(f, strconv.Itoa(os.Getpid())+"\n")); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory lock %s: %w", path, err)
	}
	return func() error {
		// Empty it first: a reader must never take a stale pid for a
		// running node (the lock, not the content, says who runs).
		_ = f.Truncate(0)
		return f.Close()
	}, nil
}

func writeAt0(f *os.File, s string) error {
	_, err := f.WriteAt([]byte(s), 0)
	return err
}
