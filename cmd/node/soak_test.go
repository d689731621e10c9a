package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
)

// soakNode is one `skein run` process of TestSoakGroupOfProcesses.
type soakNode struct {
	dir   string
	cmd   *exec.Cmd
	lines *lineWaiter
	cl    *client.Client
	peer  string
	addrs []string
}

// startSoakNode starts `skein run` on dir with its plugins linked in (one
// process per node), listening on loopback, bootstrapped to boot.
func startSoakNode(t testing.TB, env []string, dir string, boot []string) *soakNode {
	t.Helper()
	cmd := exec.Command(skeinBin, "run", "--data-dir", dir)
	cmd.Env = append(slices.Clone(env),
		"SKEIN_PLUGINS__NETWORK__CONFIG__LISTEN=[/ip4/127.0.0.1/tcp/0]",
		"SKEIN_PLUGINS__NETWORK__MODE=linked", "SKEIN_PLUGINS__STORE__MODE=linked",
		"SKEIN_PLUGINS__NETWORK__CONFIG__BOOTSTRAP=["+strings.Join(boot, ",")+"]")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &soakNode{dir: dir, cmd: cmd, lines: newLineWaiter(stderr)}
	t.Cleanup(func() {
		if n.cl != nil {
			n.cl.Close()
		}
		if n.cmd.ProcessState == nil {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
		}
	})
	n.lines.wait(t, "node running", 2*time.Minute)
	if n.cl, err = client.Dial(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acct, err := n.cl.Account.Get(ctx, &apiv1.GetAccountRequest{})
	if err != nil {
		t.Fatalf("account of %s: %v", dir, err)
	}
	n.peer, n.addrs = acct.GetPeerId(), acct.GetAddrs()
	if len(n.addrs) == 0 {
		t.Fatalf("%s lists no address", dir)
	}
	return n
}

func (n *soakNode) bootAddr() string { return n.addrs[0] + "/p2p/" + n.peer }

// rss returns the process's resident set in bytes.
func (n *soakNode) rss() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// soakWait polls cond until it holds, failing after d.
func soakWait(t testing.TB, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, state)
		}
		time.Sleep(500 * time.Millisecond) // polling a condition across processes
	}
}

// parallel runs f(i) for i in [0,n), at most k at once, and waits.
func parallel(n, k int, f func(i int)) {
	sem := make(chan struct{}, k)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// TestSoakGroupOfProcesses is issue 13's real-network check: N (default
// 30, SKEIN_SOAK_N) members as separate `skein run` processes over libp2p
// on loopback form one group (each joining by its own invitation, all at
// once) and converge: every member sees N members and every message. It
// runs only with SKEIN_SOAK=1 (minutes, N processes); it logs the times
// and the processes' memory for docs/performance.md.
func TestSoakGroupOfProcesses(t *testing.T) {
	if os.Getenv("SKEIN_SOAK") != "1" {
		t.Skip("set SKEIN_SOAK=1 to run N skein processes (minutes)")
	}
	n := 30
	if s := os.Getenv("SKEIN_SOAK_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 2 {
			t.Fatalf("SKEIN_SOAK_N=%q: want a number ≥ 2", s)
		}
		n = v
	}
	const senders = 5
	t.Logf("load before: %s", loadAvg())
	env := testEnv(t)
	root := t.TempDir()
	dirs := make([]string, n)
	parallel(n, 4, func(i int) {
		dirs[i] = filepath.Join(root, fmt.Sprintf("node%02d", i))
		if r := skein(t, env, "init", "--data-dir", dirs[i]); r.code != 0 {
			t.Errorf("init %d: %s", i, r.stderr)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	start := time.Now()
	nodes := make([]*soakNode, n)
	nodes[0] = startSoakNode(t, env, dirs[0], nil)
	// Every other node is bootstrapped to the first two, so the graph
	// does not hang on one hub alone; the DHT and gossipsub's peer
	// exchange find the rest.
	nodes[1] = startSoakNode(t, env, dirs[1], []string{nodes[0].bootAddr()})
	boot := []string{nodes[0].bootAddr(), nodes[1].bootAddr()}
	parallel(n-2, 4, func(j int) { nodes[j+2] = startSoakNode(t, env, dirs[j+2], boot) })
	if t.Failed() {
		t.FailNow()
	}
	up := time.Since(start)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	g, err := nodes[0].cl.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "soak"})
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	group := g.GetId()
	tokens := make([]string, n)
	for i := 1; i < n; i++ {
		inv, err := nodes[0].cl.Groups.Invite(ctx, &apiv1.InviteRequest{Group: group})
		if err != nil {
			t.Fatalf("invite %d: %v", i, err)
		}
		tokens[i] = inv.GetToken()
	}
	joinStart := time.Now()
	parallel(n-1, n, func(j int) {
		i := j + 1
		if _, err := nodes[i].cl.Groups.Join(ctx, &apiv1.JoinGroupRequest{Token: tokens[i], Name: "soak"}); err != nil {
			t.Errorf("node %d joins: %v", i, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	joined := time.Since(joinStart)
	members := func(i int) int {
		ms, err := nodes[i].cl.Groups.Members(ctx, &apiv1.MembersRequest{Group: group})
		if err != nil {
			return -1
		}
		return len(ms.GetMembers())
	}
	soakWait(t, fmt.Sprintf("every node sees %d members", n), 10*time.Minute, func() (bool, string) {
		var lag []string
		for i := range nodes {
			if m := members(i); m != n {
				lag = append(lag, fmt.Sprintf("node %d: %d", i, m))
			}
		}
		return len(lag) == 0, strings.Join(lag, ", ")
	})
	settled := time.Since(joinStart)

	sendStart := time.Now()
	for i := range senders {
		from := nodes[i*(n-1)/(senders-1)]
		if _, err := from.cl.Messages.Send(ctx, &apiv1.SendRequest{Group: group, Body: fmt.Appendf(nil, "soak %d", i)}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	soakWait(t, "every node has every message", 10*time.Minute, func() (bool, string) {
		var lag []string
		for i, nd := range nodes {
			l, err := nd.cl.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: group})
			if err != nil || len(l.GetMessages()) != senders {
				lag = append(lag, fmt.Sprintf("node %d: %d", i, len(l.GetMessages())))
			}
		}
		return len(lag) == 0, strings.Join(lag, ", ")
	})
	delivered := time.Since(sendStart)

	var rss int64
	for _, nd := range nodes {
		rss += nd.rss()
	}
	t.Logf("N=%d processes: up in %v; %d joins returned in %v; every member saw %d members %v after the joins began; %d messages at every member in %v; RSS %.0f MiB in all (%.0f MiB per node); load after: %s",
		n, up.Round(time.Millisecond), n-1, joined.Round(time.Millisecond), n, settled.Round(time.Millisecond),
		senders, delivered.Round(time.Millisecond), float64(rss)/(1<<20), float64(rss)/float64(n)/(1<<20), loadAvg())

	stopStart := time.Now()
	parallel(n, n, func(i int) {
		if err := nodes[i].cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("stop %d: %v", i, err)
			return
		}
		if err := nodes[i].cmd.Wait(); err != nil {
			t.Errorf("node %d exited with %v", i, err)
		}
	})
	t.Logf("stopped %d processes in %v", n, time.Since(stopStart).Round(time.Millisecond))
}

func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(data))
}
