// Package netnstest runs a Go test inside a fresh Linux network namespace
// of its own, so that tests of LAN protocols (multicast DNS above all)
// never send a packet on the machine's real interfaces.
//
// A test calls Enter first:
//
//	func TestOnTheLAN(t *testing.T) {
//		if !netnstest.Enter(t, netnstest.VethPair) {
//			return // the test ran in the namespace, in a child process
//		}
//		// here: inside the namespace, with the links VethPair made
//	}
//
// Enter re-executes the test binary for that one test in a new network
// namespace (as root: CLONE_NEWNET; otherwise also a new user namespace,
// where the kernel allows it), relays its output and result, and returns
// false; in the child it sets the namespace up with `ip` and returns true.
// Where the kernel refuses a namespace, or `ip` is missing, the test is
// skipped with one line saying why. Processes the child starts (plugins
// out of process) inherit the namespace.
package netnstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Env holds, in the child, the name of the test it runs in the namespace.
const Env = "SKEIN_NETNSTEST"

// VethPair is a setup: loopback up, and a veth pair m0 (10.77.0.1/24) and
// m1 (10.77.0.2/24), both ends in the namespace, multicast on: a packet
// multicast out of one end comes in on the other, as between two hosts.
var VethPair = [][]string{
	{"link", "set", "lo", "up"},
	{"link", "add", "m0", "type", "veth", "peer", "name", "m1"},
	{"addr", "add", "10.77.0.1/24", "dev", "m0"},
	{"addr", "add", "10.77.0.2/24", "dev", "m1"},
	{"link", "set", "m0", "multicast", "on", "up"},
	{"link", "set", "m1", "multicast", "on", "up"},
}

// Enter runs the test in a new network namespace set up by the `ip`
// commands of setup (each the arguments of one `ip` call). See the
// package doc.
func Enter(t *testing.T, setup [][]string) bool {
	t.Helper()
	if os.Getenv(Env) == t.Name() {
		for _, args := range setup {
			if out, err := ipCmd(args...); err != nil {
				t.Fatalf("netnstest: set up the namespace: %v: %s", err, out)
			}
		}
		return true
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: needs iproute2's `ip` to set up a network namespace (Debian: apt-get install iproute2)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// -test.v always: a skip in the child must be seen to be relayed.
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).Round(time.Second).String())
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), Env+"="+t.Name())
	cmd.SysProcAttr = namespaceAttr()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EACCES) {
			t.Skipf("skipped: the kernel refuses a network namespace: %v", err)
		}
		t.Fatalf("netnstest: start the test in a namespace: %v", err)
	}
	err = cmd.Wait()
	text := out.String()
	if err != nil {
		t.Fatalf("in a network namespace: %v\n%s", err, text)
	}
	if strings.Contains(text, "--- SKIP: "+t.Name()) {
		t.Skip(strings.TrimSpace(lastLine(text, "--- SKIP: "+t.Name())))
	}
	if testing.Verbose() {
		t.Log("in a network namespace:\n" + text)
	}
	return false
}

// namespaceAttr is a new network namespace; as non-root, inside a new
// user namespace mapping this user to root, which some kernels allow.
func namespaceAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() != 0 {
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		a.GidMappingsEnableSetgroups = false
	}
	return a
}

func lastLine(text, prefix string) string {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], prefix) {
			if i+1 < len(lines) {
				return lines[i+1]
			}
			return lines[i]
		}
	}
	return ""
}

func ipCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// IP runs `ip args...` (inside the namespace, from the test) and fails the
// test if it fails.
func IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ipCmd(args...)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return out
}
