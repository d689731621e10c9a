package pluginhost

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// startByHand runs the test binary as a plugin in debug mode, as a
// developer would under a debugger, and returns its reattach line.
func startByHand(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	path, _ := testBinary(t)
	cmd := exec.Command(path)
	cmd.Env = []string{testPluginEnv + "=memstore", sdk.DebugEnv + "=1", "PATH=" + os.Getenv("PATH")}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if l := sc.Text(); !sent && strings.HasPrefix(l, sdk.ReattachEnv+"=") {
				lines <- l
				sent = true
			}
		}
	}()
	select {
	case l := <-lines:
		return cmd, l
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s line from the debug-mode plugin", sdk.ReattachEnv)
		return nil, ""
	}
}

func TestReattach(t *testing.T) {
	cmd, line := startByHand(t)
	h, _ := newTestHost(t)
	p := launch(t, h, Spec{Name: "dbg", ID: memStoreID, Mode: ModeReattach, Reattach: line})
	if p.PID() != cmd.Process.Pid {
		t.Fatalf("PID() = %d, want the hand-started %d", p.PID(), cmd.Process.Pid)
	}
	st, err := p.Store()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	if err := st.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	// The host cannot relaunch a plugin it did not start.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, 10*time.Second, "stopped", func() bool { return p.state == StateStopped })
	if _, err := st.Get(ctx, []byte("k")); !errors.Is(err, ErrPluginStopped) {
		t.Fatalf("Get after the reattached plugin died: err = %v, want ErrPluginStopped", err)
	}
}

// TestPluginDiesWithHost SIGKILLs a host process: its plugin, started with
// Pdeathsig, must not outlive it.
func TestPluginDiesWithHost(t *testing.T) {
	path, _ := testBinary(t)
	cmd := exec.Command(path)
	cmd.Env = []string{testPluginEnv + "=host", "PATH=" + os.Getenv("PATH")}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pids := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var pid int
			if _, err := fmt.Sscanf(sc.Text(), "PLUGINPID %d", &pid); err == nil {
				pids <- pid
				return
			}
		}
	}()
	var pid int
	select {
	case pid = <-pids:
	case <-time.After(20 * time.Second):
		t.Fatal("the host process did not report its plugin's pid")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// Wait for the condition "pid is gone", polling (nothing to wait on:
	// the plugin is not our child).
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for processAlive(pid) {
		select {
		case <-deadline.C:
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("plugin %d outlived its host by 10s", pid)
		case <-tick.C:
		}
	}
}
