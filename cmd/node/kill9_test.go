package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"regexp"
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

// listenEnv sets the network plugin's listen addresses.
const listenEnv = "SKEIN_PLUGINS__NETWORK__CONFIG__LISTEN"

// kill9Node is one `skein run` child of TestKill9.
type kill9Node struct {
	cmd   *exec.Cmd
	lines *lineWaiter
	// pluginPIDs are the out-of-process plugins' pids, from "plugin up".
	pluginPIDs []int
}

// startKill9Node starts `skein run` on dataDir (with runArgs) and waits
// until it serves the client API and runs.
func startKill9Node(t testing.TB, env []string, dataDir string, runArgs ...string) *kill9Node {
	t.Helper()
	cmd := exec.Command(skeinBin, append([]string{"run", "--data-dir", dataDir}, runArgs...)...)
	// The network plugin listens on loopback, on a free port (unless env
	// names its addresses).
	cmd.Env = slices.Clone(env)
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, listenEnv+"=") }) {
		cmd.Env = append(cmd.Env, listenEnv+"=[/ip4/127.0.0.1/tcp/0]")
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &kill9Node{cmd: cmd, lines: newLineWaiter(stderr)}
	t.Cleanup(func() {
		if n.cmd.ProcessState == nil {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
		}
	})
	n.lines.wait(t, "client API serving", 30*time.Second)
	n.lines.wait(t, "node running", 30*time.Second)
	pidRE := regexp.MustCompile(`pid=(\d+)`)
	n.lines.mu.Lock()
	for _, l := range n.lines.lines {
		if !strings.Contains(l, `msg="plugin up"`) || !strings.Contains(l, "mode=process") {
			continue
		}
		if m := pidRE.FindStringSubmatch(l); m != nil {
			pid, _ := strconv.Atoi(m[1])
			n.pluginPIDs = append(n.pluginPIDs, pid)
		}
	}
	n.lines.mu.Unlock()
	if len(n.pluginPIDs) == 0 {
		t.Fatalf("no out-of-process plugin in the node's log:\n%s", n.lines.snapshot())
	}
	return n
}

// snapshot returns the lines collected so far.
func (w *lineWaiter) snapshot() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// kill9 sends SIGKILL to the node and waits until it and its plugin
// processes are gone.
func (n *kill9Node) kill9(t testing.TB) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := n.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("run after SIGKILL: wait returned %v; want killed", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("run after SIGKILL: exit %v; want killed by SIGKILL", err)
	}
	for _, pid := range n.pluginPIDs {
		if !waitGone(pid, 10*time.Second) {
			t.Fatalf("plugin process %d still exists 10s after its node was killed", pid)
		}
	}
}

// stop stops the node with SIGTERM and waits for it.
func (n *kill9Node) stop(t testing.TB) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Wait(); err != nil {
		t.Fatalf("run exited with %v after SIGTERM\n%s", err, n.lines.text())
	}
}

// ackedMessage is a message the node acknowledged.
type ackedMessage struct {
	cid, body string
}

// sendUntilKilled sends messages numbered from first to group until a send
// fails, and returns the acknowledged ones, in order, and the body of the
// send that failed. acked receives the count after every acknowledgement.
func sendUntilKilled(ctx context.Context, cl *client.Client, group string, round, first int, acked chan<- int) ([]ackedMessage, string) {
	var got []ackedMessage
	for i := first; ; i++ {
		body := fmt.Sprintf("round %d message %d", round, i)
		callCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		m, err := cl.Messages.Send(callCtx, &apiv1.SendRequest{Group: group, Body: []byte(body)})
		cancel()
		if err != nil {
			return got, body
		}
		got = append(got, ackedMessage{cid: m.GetCid(), body: string(m.GetBody())})
		select {
		case acked <- len(got):
		default:
		}
	}
}

// listMessages returns the group's messages, oldest first.
func listMessages(t testing.TB, dataDir, group string) []*apiv1.Message {
	t.Helper()
	cl, err := client.Dial(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	list, err := cl.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: group})
	if err != nil {
		t.Fatalf("list messages: %v", err)
	}
	return list.GetMessages()
}

// checkAcked fails the test unless every acknowledged message is listed
// with its body, in the order sent, and no body or CID is listed twice.
// inFlight holds the bodies of sends that failed (at most one per kill):
// those may be listed, once, or not at all.
func checkAcked(t testing.TB, listed []*apiv1.Message, acked []ackedMessage, inFlight map[string]bool) {
	t.Helper()
	pos := make(map[string]int, len(listed))
	bodies := make(map[string]int, len(listed))
	for i, m := range listed {
		if _, dup := pos[m.GetCid()]; dup {
			t.Errorf("message %s listed twice", m.GetCid())
		}
		pos[m.GetCid()] = i
		bodies[string(m.GetBody())]++
	}
	for b, n := range bodies {
		if n > 1 {
			t.Errorf("body %q listed %d times", b, n)
		}
	}
	prev := -1
	ackedBodies := make(map[string]bool, len(acked))
	for _, a := range acked {
		ackedBodies[a.body] = true
		i, ok := pos[a.cid]
		if !ok {
			t.Errorf("acknowledged message %s %q lost", a.cid, a.body)
			continue
		}
		if got := string(listed[i].GetBody()); got != a.body {
			t.Errorf("message %s: body %q; acknowledged %q", a.cid, got, a.body)
		}
		if i <= prev {
			t.Errorf("acknowledged message %s %q listed at %d, before the one acknowledged earlier (at %d)", a.cid, a.body, i, prev)
		}
		prev = i
	}
	for b := range bodies {
		if !ackedBodies[b] && !inFlight[b] {
			t.Errorf("message %q listed but never sent", b)
		}
	}
}

// TestKill9 is issue 4's "a node killed with kill -9 while sending still
// has, after restart, every message it acknowledged": a sender sends
// through the client API, the node is killed with SIGKILL after a
// seeded pseudo-random number of acknowledgements while a send is still
// going on, and after a restart on the same data directory every
// acknowledged message is there, once, in the order sent. Several rounds
// on the same data directory, each with its own count.
func TestKill9(t *testing.T) {
	const seed = 4
	rng := rand.New(rand.NewPCG(seed, seed))
	rounds := 3
	if testing.Short() {
		rounds = 1
	}

	dataDir := filepath.Join(t.TempDir(), "node")
	env := testEnv(t)
	if r := skein(t, env, "init", "--data-dir", dataDir); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}

	node := startKill9Node(t, env, dataDir)
	cl, err := client.Dial(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := cl.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "kill9"})
	cl.Close()
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	group := g.GetId()

	var acked []ackedMessage
	inFlight := map[string]bool{}
	next := 0
	for round := range rounds {
		want := 20 + rng.IntN(61) // 20..80 acknowledged sends before the kill
		t.Logf("round %d: kill after %d acknowledged sends", round, want)

		cl, err := client.Dial(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		counts := make(chan int, 1)
		var wg sync.WaitGroup
		var got []ackedMessage
		var failed string
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, failed = sendUntilKilled(ctx, cl, group, round, next, counts)
		}()
		deadline := time.NewTimer(30 * time.Second)
		for n := 0; n < want; {
			select {
			case n = <-counts:
			case <-deadline.C:
				t.Fatalf("round %d: only %d acknowledged sends within 30s", round, n)
			}
		}
		deadline.Stop()
		// The sender is still sending: kill the node under it.
		node.kill9(t)
		wg.Wait()
		cl.Close()
		if len(got) < want {
			t.Fatalf("round %d: %d acknowledged sends, want at least %d", round, len(got), want)
		}
		acked = append(acked, got...)
		inFlight[failed] = true
		next += len(got) + 1

		node = startKill9Node(t, env, dataDir)
		listed := listMessages(t, dataDir, group)
		checkAcked(t, listed, acked, inFlight)
		if t.Failed() {
			t.Fatalf("round %d: %d acknowledged, %d listed\nnode log:\n%s", round, len(acked), len(listed), node.lines.snapshot())
		}
	}
	node.stop(t)
}

// TestKill9ConcurrentSenders is TestKill9 with several clients sending at
// once, whose sends the node writes together (a group commit): after a
// kill -9 and a restart, every message any of them had acknowledged is
// there, once, and each sender's in the order it sent them.
func TestKill9ConcurrentSenders(t *testing.T) {
	kill9Senders(t, 8, 12, func(ctx context.Context, cl *client.Client, group string, round, first int, acked chan<- int) ([]ackedMessage, []string) {
		got, failed := sendUntilKilled(ctx, cl, group, round, first, acked)
		return got, []string{failed}
	})
}

// TestKill9StreamedSenders is TestKill9ConcurrentSenders with each sender
// pipelining its sends over Messages.SendStream (client.Sender), up to
// apiv1.MaxSendsInFlight unacknowledged: after a kill -9 and a restart
// every message acknowledged on any stream is there, once, and each
// stream's in the order sent; those in flight may be there or not.
func TestKill9StreamedSenders(t *testing.T) {
	kill9Senders(t, 4, 13, streamUntilKilled)
}

// streamUntilKilled is sendUntilKilled over one client.Sender: it returns
// the acknowledged messages in order and the bodies sent but not
// acknowledged when the stream broke.
func streamUntilKilled(ctx context.Context, cl *client.Client, group string, round, first int, acked chan<- int) ([]ackedMessage, []string) {
	s, err := cl.NewSender(ctx)
	if err != nil {
		return nil, nil
	}
	type sent struct {
		body string
		p    *client.PendingSend
	}
	queue := make(chan sent, apiv1.MaxSendsInFlight)
	var got []ackedMessage
	var unacked []string // by the acking goroutine
	var last string      // the send that failed, if any
	done := make(chan struct{})
	go func() {
		defer close(done)
		for q := range queue {
			ack, err := q.p.Wait(ctx)
			if err != nil {
				unacked = append(unacked, q.body)
				continue
			}
			got = append(got, ackedMessage{cid: ack.GetCid(), body: q.body})
			select {
			case acked <- len(got):
			default:
			}
		}
	}()
	for i := first; ; i++ {
		body := fmt.Sprintf("round %d message %d", round, i)
		p, err := s.Send(ctx, group, []byte(body))
		if err != nil {
			last = body // perhaps sent before the stream broke
			break
		}
		queue <- sent{body: body, p: p}
	}
	close(queue)
	<-done
	s.Close(ctx) //nolint:errcheck // the node is gone
	if last != "" {
		unacked = append(unacked, last)
	}
	return got, unacked
}

// kill9Senders runs rounds of: senders clients sending with send on one
// group until the node is killed with kill -9 after a seeded number of
// acknowledgements, then a restart and checkAcked.
func kill9Senders(t *testing.T, senders int, seed uint64, send func(ctx context.Context, cl *client.Client, group string, round, first int, acked chan<- int) ([]ackedMessage, []string)) {
	rng := rand.New(rand.NewPCG(seed, seed))
	rounds := 2
	if testing.Short() {
		rounds = 1
	}
	dataDir := filepath.Join(t.TempDir(), "node")
	env := testEnv(t)
	if r := skein(t, env, "init", "--data-dir", dataDir); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	node := startKill9Node(t, env, dataDir)
	cl, err := client.Dial(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := cl.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "kill9"})
	cl.Close()
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	group := g.GetId()

	acked := make([][]ackedMessage, senders)
	inFlight := map[string]bool{}
	next := make([]int, senders)
	for round := range rounds {
		want := 100 + rng.IntN(201) // 100..300 acknowledged sends in all before the kill
		t.Logf("round %d: kill after %d acknowledged sends", round, want)
		total := make(chan int, senders*4)
		got := make([][]ackedMessage, senders)
		failed := make([][]string, senders)
		var wg sync.WaitGroup
		var clients []*client.Client
		for s := range senders {
			cl, err := client.Dial(dataDir)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, cl)
			counts := make(chan int, 1)
			stop := make(chan struct{})
			wg.Go(func() {
				defer close(stop)
				got[s], failed[s] = send(ctx, cl, group, round*senders+s, next[s], counts)
			})
			go func() {
				last := 0
				for {
					select {
					case n := <-counts:
						total <- n - last
						last = n
					case <-stop:
						return
					}
				}
			}()
		}
		deadline := time.NewTimer(60 * time.Second)
		for n := 0; n < want; {
			select {
			case d := <-total:
				n += d
			case <-deadline.C:
				t.Fatalf("round %d: only %d acknowledged sends within 60s", round, n)
			}
		}
		deadline.Stop()
		// The senders are still sending: kill the node under them.
		node.kill9(t)
		wg.Wait()
		for _, cl := range clients {
			cl.Close()
		}
		for s := range senders {
			acked[s] = append(acked[s], got[s]...)
			for _, b := range failed[s] {
				inFlight[b] = true
			}
			next[s] += len(got[s]) + len(failed[s])
		}

		node = startKill9Node(t, env, dataDir)
		listed := listMessages(t, dataDir, group)
		all := 0
		for s := range senders {
			// The others' messages are not this sender's to account for.
			others := maps.Clone(inFlight)
			for o := range senders {
				if o != s {
					for _, a := range acked[o] {
						others[a.body] = true
					}
				}
			}
			checkAcked(t, listed, acked[s], others)
			all += len(acked[s])
		}
		if t.Failed() {
			t.Fatalf("round %d: %d acknowledged, %d listed\nnode log:\n%s", round, all, len(listed), node.lines.snapshot())
		}
		t.Logf("round %d: %d acknowledged in all, %d listed", round, all, len(listed))
	}
	node.stop(t)
}
