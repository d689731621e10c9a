//go:build linux

package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// subnet is the private /24 every test's namespaces share. It exists only
// inside them: the namespaces have no route to anything else, so tests
// running at the same time cannot see each other's addresses.
const subnet = "10.213.0"

// bridgeName is the bridge in the bridge namespace.
const bridgeName = "br0"

// host is one namespace joined to the bridge.
type host struct {
	name string // short name: a, b, c
	ns   string // network namespace
	addr string // IPv4 address inside ns
	port string // the veth end on the bridge, in the bridge namespace
}

// topology is a bridge namespace and the hosts joined to it.
type topology struct {
	bridgeNS string
	hosts    map[string]*host
}

// ipCmd runs `ip args...` with a deadline and returns its combined output.
func ipCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// mustIP runs `ip args...` and fails the test if it fails.
func mustIP(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := ipCmd(args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// nsNamePrefix starts the name of every namespace these tests create.
const nsNamePrefix = "skein-e2e-"

// nsPrefix is a prefix for one topology's namespaces: nsNamePrefix, the
// test process's pid (so that a later run can tell a leftover namespace,
// see sweepStale) and a random tag.
func nsPrefix(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("%s%d-%s", nsNamePrefix, os.Getpid(), runID(tb))
}

// sweepStale deletes the namespaces left by a test process that died
// before its cleanup ran (killed by go test -timeout, say): those named
// by nsPrefix whose pid no longer exists. Namespaces of a run still going
// on are left alone.
func sweepStale(tb testing.TB) {
	tb.Helper()
	out, err := ipCmd("netns", "list")
	if err != nil {
		return // requireNetns reports what is wrong with ip netns
	}
	for line := range strings.Lines(out) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsNamePrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if _, err := ipCmd("netns", "del", name); err != nil {
			tb.Logf("remove leftover namespace %s: %v", name, err)
		} else {
			tb.Logf("removed leftover namespace %s (its test process %d is gone)", name, pid)
		}
	}
}

// runID is a short random tag that makes this run's namespace names unique.
func runID(tb testing.TB) string {
	tb.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// requireNetns skips the test unless it runs as root with `ip` installed
// and the kernel lets it create a namespace holding a bridge and a veth
// pair. It says why it skips.
func requireNetns(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("multi-host tests need root to create network namespaces (run the tests as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("multi-host tests need iproute2's `ip` (Debian: apt-get install iproute2)")
	}
	sweepStale(tb)
	probe := nsPrefix(tb) + "-probe"
	if _, err := ipCmd("netns", "add", probe); err != nil {
		tb.Skipf("multi-host tests skipped: the kernel refuses a network namespace: %v", err)
	}
	defer func() {
		if _, err := ipCmd("netns", "del", probe); err != nil {
			tb.Errorf("remove probe namespace: %v", err)
		}
	}()
	if _, err := ipCmd("-n", probe, "link", "add", bridgeName, "type", "bridge"); err != nil {
		tb.Skipf("multi-host tests skipped: the kernel refuses a bridge in a namespace: %v", err)
	}
	if _, err := ipCmd("-n", probe, "link", "add", "pa", "type", "veth", "peer", "name", "pb"); err != nil {
		tb.Skipf("multi-host tests skipped: the kernel refuses a veth pair in a namespace: %v", err)
	}
}

// newTopology creates a bridge namespace and one namespace per name, each
// joined to the bridge by a veth pair, with the address subnet.(i+1).
// Everything is removed in t.Cleanup; register it before starting
// processes in the namespaces, so that they are stopped first.
func newTopology(tb testing.TB, names ...string) *topology {
	tb.Helper()
	requireNetns(tb)
	prefix := nsPrefix(tb)
	topo := &topology{bridgeNS: prefix + "-br", hosts: map[string]*host{}}
	var created []string
	tb.Cleanup(func() {
		// Deleting a namespace destroys its veth ends and, with them, their
		// peers in the other namespaces.
		for _, ns := range created {
			if _, err := ipCmd("netns", "del", ns); err != nil {
				tb.Errorf("remove namespace %s: %v", ns, err)
			}
		}
	})
	add := func(ns string) {
		mustIP(tb, "netns", "add", ns)
		created = append(created, ns)
		mustIP(tb, "-n", ns, "link", "set", "lo", "up")
	}
	add(topo.bridgeNS)
	mustIP(tb, "-n", topo.bridgeNS, "link", "add", bridgeName, "type", "bridge")
	mustIP(tb, "-n", topo.bridgeNS, "link", "set", bridgeName, "up")
	for i, name := range names {
		h := &host{name: name, ns: prefix + "-" + name, addr: fmt.Sprintf("%s.%d", subnet, i+1), port: "p-" + name}
		add(h.ns)
		// Both ends are created straight in their namespaces: no name is
		// ever taken in the machine's own namespace.
		mustIP(tb, "link", "add", "eth0", "netns", h.ns, "type", "veth", "peer", "name", h.port, "netns", topo.bridgeNS)
		mustIP(tb, "-n", topo.bridgeNS, "link", "set", h.port, "master", bridgeName)
		mustIP(tb, "-n", topo.bridgeNS, "link", "set", h.port, "up")
		mustIP(tb, "-n", h.ns, "addr", "add", h.addr+"/24", "dev", "eth0")
		mustIP(tb, "-n", h.ns, "link", "set", "eth0", "up")
		topo.hosts[name] = h
	}
	return topo
}

// cut takes the host's bridge port down: nothing the host sends reaches
// the others, and nothing of theirs reaches it.
func (topo *topology) cut(tb testing.TB, name string) {
	tb.Helper()
	mustIP(tb, "-n", topo.bridgeNS, "link", "set", topo.hosts[name].port, "down")
}

// heal brings the host's bridge port back up.
func (topo *topology) heal(tb testing.TB, name string) {
	tb.Helper()
	mustIP(tb, "-n", topo.bridgeNS, "link", "set", topo.hosts[name].port, "up")
}

// TestTopology checks the namespaces themselves: the hosts reach each other
// over the bridge, a cut host reaches no one, and a healed one again.
// Reachability is probed with a TCP connect from inside one namespace to a
// listener inside another.
func TestTopology(t *testing.T) {
	topo := newTopology(t, "a", "b")
	a, b := topo.hosts["a"], topo.hosts["b"]
	if out := mustIP(t, "-n", a.ns, "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, a.addr+"/24") {
		t.Fatalf("a's eth0 lacks %s:\n%s", a.addr, out)
	}
	// The namespaces hold only their own link and loopback: no route out.
	if out := mustIP(t, "-n", a.ns, "-4", "route", "show"); strings.Contains(out, "default") {
		t.Fatalf("a has a default route:\n%s", out)
	}

	tests := []struct {
		name      string
		change    func()
		reachable bool
	}{
		{name: "joined", change: func() {}, reachable: true},
		{name: "a cut", change: func() { topo.cut(t, "a") }, reachable: false},
		{name: "a healed", change: func() { topo.heal(t, "a") }, reachable: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.change()
			if got := tcpReachable(t, a, b, tc.reachable); got != tc.reachable {
				t.Fatalf("a reaches b: %v, want %v", got, tc.reachable)
			}
		})
	}
}

// tcpReachable reports whether from can open a TCP connection to a
// listener on to's address. When it should work it tries for up to 5 s (a
// bridge port coming up takes a moment); each try gives up after 1 s. The
// listener and the dialler are this test binary, re-executed inside the
// namespaces (see TestMain).
func tcpReachable(tb testing.TB, from, to *host, want bool) bool {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := to.addr + ":7001"
	ln := exec.CommandContext(ctx, "ip", "netns", "exec", to.ns, self)
	ln.Env = append(os.Environ(), helperEnv+"=listen", helperAddrEnv+"="+addr)
	out, err := ln.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	ln.Stderr = os.Stderr
	if err := ln.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		_ = ln.Process.Kill()
		_ = ln.Wait()
	}()
	ready := make([]byte, len("ready\n"))
	if _, err := io.ReadFull(out, ready); err != nil || string(ready) != "ready\n" {
		tb.Fatalf("listener in %s did not start: %q %v", to.ns, ready, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		dial := exec.CommandContext(ctx, "ip", "netns", "exec", from.ns, self)
		dial.Env = append(os.Environ(), helperEnv+"=dial", helperAddrEnv+"="+addr)
		if dial.Run() == nil {
			return true
		}
		if !want || time.Now().After(deadline) {
			return false
		}
	}
}

// Environment of the helper mode of this test binary (see TestMain).
const (
	helperEnv     = "SKEIN_NETNS_E2E_HELPER" // listen or dial
	helperAddrEnv = "SKEIN_NETNS_E2E_ADDR"   // host:port
)

// runHelper is the test binary re-executed inside a namespace: listen on
// the address, print "ready" and accept until killed, or dial it once
// with a 1 s timeout and exit 0 when connected; or observe or flood the
// LAN's multicast DNS (lan_helpers_test.go).
func runHelper(mode, addr string) int {
	switch mode {
	case "listen":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("ready")
		for {
			c, err := l.Accept()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			c.Close()
		}
	case "dial":
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return 1
		}
		c.Close()
		return 0
	case "observe":
		return runObserver()
	case "flood":
		return runFlooder(addr)
	default:
		fmt.Fprintf(os.Stderr, "%s: unknown mode %q\n", helperEnv, mode)
		return 2
	}
}
