package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin/runner"
)

// processRunner is the go-plugin runner for a plugin child process. The
// host builds the exec.Cmd itself (allow-listed environment, Pdeathsig) and
// learns of the process's exit through exited, which go-plugin's own Client
// does not expose.
type processRunner struct {
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr io.ReadCloser

	exited   chan struct{} // closed once Wait has returned
	waitOnce sync.Once
	waitErr  error
}

var _ runner.Runner = (*processRunner)(nil)

func newProcessRunner(path string, args, env []string) (*processRunner, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdin = nil // /dev/null: a plugin reads nothing from the node's terminal
	cmd.SysProcAttr = childSysProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return &processRunner{cmd: cmd, stdout: stdout, stderr: stderr, exited: make(chan struct{})}, nil
}

// Start starts the process from the fork thread, so that Pdeathsig (which
// Linux ties to the thread that forked, not the process) fires only when
// the node itself dies.
func (r *processRunner) Start(context.Context) error {
	return onForkThread(r.cmd.Start)
}

func (r *processRunner) Diagnose(context.Context) string {
	return "(is the binary a skein plugin? a plugin must not write to stdout before the handshake)"
}

func (r *processRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *processRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *processRunner) Name() string          { return r.cmd.Path }

// Wait waits for the process; go-plugin calls it once stdout and stderr are
// drained. It may be called more than once.
func (r *processRunner) Wait(context.Context) error {
	r.waitOnce.Do(func() {
		r.waitErr = r.cmd.Wait()
		close(r.exited)
	})
	<-r.exited
	return r.waitErr
}

// Kill sends SIGKILL; killing a process that has already exited is not an
// error.
func (r *processRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *processRunner) ID() string {
	if r.cmd.Process == nil {
		return ""
	}
	return strconv.Itoa(r.cmd.Process.Pid)
}

func (r *processRunner) pid() int {
	if r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// exitStatus describes how the process ended, for logs (call after exited).
func (r *processRunner) exitStatus() string {
	if r.cmd.ProcessState == nil {
		return "unknown"
	}
	return r.cmd.ProcessState.String()
}

func (r *processRunner) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (r *processRunner) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }

// attachedRunner watches a plugin process the host did not start
// (reattach mode). It cannot wait(2) on a non-child, so it polls.
type attachedRunner struct {
	pid      int
	process  *os.Process
	exited   chan struct{}
	stopPoll chan struct{}
	once     sync.Once
}

var _ runner.AttachedRunner = (*attachedRunner)(nil)

// reattachPollInterval is how often a reattached plugin's pid is checked.
const reattachPollInterval = 250 * time.Millisecond

func newAttachedRunner(pid int) (*attachedRunner, error) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil, err
	}
	if err := p.Signal(syscall.Signal(0)); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	r := &attachedRunner{pid: pid, process: p, exited: make(chan struct{}), stopPoll: make(chan struct{})}
	go r.poll()
	return r, nil
}

func (r *attachedRunner) poll() {
	t := time.NewTicker(reattachPollInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stopPoll:
			return
		case <-t.C:
			if !processAlive(r.pid) {
				close(r.exited)
				return
			}
		}
	}
}

func (r *attachedRunner) Wait(ctx context.Context) error {
	select {
	case <-r.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *attachedRunner) Kill(context.Context) error {
	if err := r.process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *attachedRunner) ID() string                                       { return strconv.Itoa(r.pid) }
func (r *attachedRunner) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (r *attachedRunner) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }

// The fork thread: one goroutine locked to its OS thread for the life of
// the process, from which every plugin is started.
var forkThread struct {
	once sync.Once
	reqs chan forkRequest
}

type forkRequest struct {
	fn   func() error
	done chan error
}

func onForkThread(fn func() error) error {
	forkThread.once.Do(func() {
		forkThread.reqs = make(chan forkRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for req := range forkThread.reqs {
				req.done <- req.fn()
			}
		}()
	})
	done := make(chan error, 1)
	forkThread.reqs <- forkRequest{fn: fn, done: done}
	return <-done
}

// processAlive reports whether pid runs; a zombie (exited, not yet reaped
// by its parent) counts as gone.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no procfs: trust kill(0)
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
