package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/core/api"
	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/peersource"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/plugins/store/memstore"
)

// lockedBuffer is a bytes.Buffer safe for a command writing while the
// test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// clientNode is a messenger on simnet with its API on a socket.
func clientNode(tb testing.TB, sn *simnet.Network, name string) (socket string, m *messenger.Messenger) {
	tb.Helper()
	nd, err := sn.AddNode(name)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	ks, err := crypto.OpenKeystore(filepath.Join(dir, "keystore"))
	if err != nil {
		tb.Fatal(err)
	}
	m, err = messenger.New(context.Background(), messenger.Config{Keystore: ks, Store: memstore.New(), Network: nd})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := api.Listen(m, api.Config{Socket: api.SocketPath(dir), PeerSources: peersource.NewBook(0)})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		<-done
		m.Close()
		ks.Close()
	})
	return srv.Socket(), m
}

// runClient runs one client command in process and returns stdout, stderr
// and the error.
func runClient(ctx context.Context, stdin string, args ...string) (string, string, error) {
	var out, errb lockedBuffer
	return runClientTo(ctx, &out, &errb, stdin, args...)
}

func runClientTo(ctx context.Context, out, errb *lockedBuffer, stdin string, args ...string) (string, string, error) {
	c := &cli{stdout: out, stderr: errb}
	root := &cobra.Command{Use: "skein", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVar(&c.dataDir, "data-dir", "", "")
	root.AddCommand(c.clientCommands()...)
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(out)
	root.SetErr(errb)
	err := root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func mustRun(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, errOut, err := runClient(ctx, stdin, args...)
	if err != nil {
		tb.Fatalf("skein %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestClientCommands(t *testing.T) {
	sn := simnet.New()
	defer sn.Close()
	sa, ma := clientNode(t, sn, "a")
	sb, _ := clientNode(t, sn, "b")
	sn.ConnectAll()

	var id struct {
		Account string `json:"account"`
		PeerID  string `json:"peer_id"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "", "id", "--json", "--socket", sa)), &id); err != nil {
		t.Fatal(err)
	}
	if id.Account != ma.Identity().AccountKey().String() || id.PeerID != "a" {
		t.Fatalf("id = %+v", id)
	}
	if out := mustRun(t, "", "id", "--socket", sa); !strings.Contains(out, ma.Identity().AccountKey().Fingerprint()) {
		t.Fatalf("id text lacks the fingerprint:\n%s", out)
	}
	// What peers connect takes, one per line, nothing else.
	if out, want := mustRun(t, "", "id", "--addrs", "--socket", sa), "/simnet/a/p2p/a\n"; out != want {
		t.Fatalf("id --addrs = %q, want %q", out, want)
	}
	if out := mustRun(t, "", "group", "create", "team", "--socket", sa); !strings.Contains(out, "created group team") {
		t.Fatalf("group create: %s", out)
	}
	var inv struct{ Token string }
	if err := json.Unmarshal([]byte(mustRun(t, "", "group", "invite", "team", "--json", "--socket", sa)), &inv); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, "", "group", "join", inv.Token, "--name", "work", "--socket", sb); !strings.Contains(out, "joined group work") {
		t.Fatalf("group join: %s", out)
	}
	waitUntil(t, "a sees two members", func() bool {
		var ms []map[string]any
		_ = json.Unmarshal([]byte(mustRun(t, "", "group", "members", "team", "--json", "--socket", sa)), &ms)
		return len(ms) == 2
	})

	// messages --follow on b, in the background.
	fctx, fcancel := context.WithCancel(context.Background())
	var fout, ferr lockedBuffer
	followDone := make(chan error, 1)
	go func() {
		_, _, err := runClientTo(fctx, &fout, &ferr, "", "messages", "work", "--follow", "--json", "--socket", sb)
		followDone <- err
	}()

	mustRun(t, "", "send", "team", "hello", "from", "a", "--socket", sa)
	mustRun(t, "from b on stdin\n", "send", "work", "-", "--socket", sb)
	mustRun(t, "also stdin\n", "send", "work", "--socket", sb)

	waitUntil(t, "b has three messages", func() bool {
		return strings.Count(mustRun(t, "", "messages", "work", "--json", "--socket", sb), "\n") == 3
	})
	waitUntil(t, "a has three messages", func() bool {
		return strings.Count(mustRun(t, "", "messages", "team", "--socket", sa), "\n") >= 3
	})
	text := mustRun(t, "", "messages", "team", "--socket", sa)
	for _, want := range []string{"hello from a", "from b on stdin", "also stdin"} {
		if !strings.Contains(text, want) {
			t.Errorf("messages lacks %q:\n%s", want, text)
		}
	}
	// The same order on both sides.
	lines := func(sock, ref string) []string {
		var cids []string
		for _, l := range strings.Split(strings.TrimSpace(mustRun(t, "", "messages", ref, "--json", "--socket", sock)), "\n") {
			var m struct{ CID string }
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("json line %q: %v", l, err)
			}
			cids = append(cids, m.CID)
		}
		return cids
	}
	la, lb := lines(sa, "team"), lines(sb, "work")
	if strings.Join(la, ",") != strings.Join(lb, ",") {
		t.Fatalf("order differs:\n%v\n%v", la, lb)
	}
	// --reverse --limit 1 is the newest; --since the first gives the rest.
	var newest struct{ CID string }
	if err := json.Unmarshal([]byte(mustRun(t, "", "messages", "team", "--json", "--reverse", "--limit", "1", "--socket", sa)), &newest); err != nil {
		t.Fatal(err)
	}
	if newest.CID != la[2] {
		t.Fatalf("newest = %s, want %s", newest.CID, la[2])
	}
	if n := strings.Count(mustRun(t, "", "messages", "team", "--json", "--since", la[0], "--socket", sa), "\n"); n != 2 {
		t.Fatalf("--since first: %d messages, want 2", n)
	}
	waitUntil(t, "follow printed all three", func() bool { return strings.Count(fout.String(), "\n") >= 3 })
	fcancel()
	if err := <-followDone; err != nil {
		t.Fatalf("messages --follow: %v (%s)", err, ferr.String())
	}

	var groups []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "", "group", "list", "--json", "--socket", sb)), &groups); err != nil || len(groups) != 1 || groups[0]["name"] != "work" {
		t.Fatalf("group list = %v, %v", groups, err)
	}
	if out := mustRun(t, "", "peers", "--socket", sa); !strings.HasPrefix(out, "b") {
		t.Fatalf("peers: %q", out)
	}
	if out := mustRun(t, "", "peers", "connect", "/simnet/b/p2p/b", "--socket", sa); out != "connected to b\n" {
		t.Fatalf("peers connect: %q", out)
	}
	// How each peer was found: b through peers connect.
	if out := mustRun(t, "", "peers", "--socket", sa); !strings.HasPrefix(out, "b  manual ") {
		t.Fatalf("peers after connect: %q", out)
	}
	var peers []struct {
		ID      string   `json:"id"`
		FoundBy []string `json:"found_by"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "", "peers", "--json", "--socket", sa)), &peers); err != nil || len(peers) != 1 || strings.Join(peers[0].FoundBy, ",") != "manual" {
		t.Fatalf("peers --json = %+v, %v", peers, err)
	}
	var st []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "", "sync", "status", "--json", "--socket", sa)), &st); err != nil || len(st) != 1 {
		t.Fatalf("sync status = %v, %v", st, err)
	}
	// The group's rendezvous ran (at creation; simnet's content routing).
	if rdv, ok := st[0]["rendezvous"].(map[string]any); !ok || rdv["last"] == nil || rdv["error"] != "" {
		t.Fatalf("sync status rendezvous = %v", st[0]["rendezvous"])
	}
	if out := mustRun(t, "", "sync", "status", "team", "--wait", "10s", "--socket", sa); !strings.Contains(out, "messages") {
		t.Fatalf("sync status text: %s", out)
	}

	// Contacts: a shares, b adds, a accepts.
	share := strings.TrimSpace(mustRun(t, "", "contact", "share", "--name", "alice", "--socket", sa))
	req := strings.TrimSpace(mustRun(t, "", "contact", "add", share, "--name", "bob", "--socket", sb))
	if out := mustRun(t, "", "contact", "accept", req, "--socket", sa); !strings.Contains(out, "contact bob accepted") {
		t.Fatalf("contact accept: %s", out)
	}
	var contacts []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "", "contact", "list", "--json", "--socket", sa)), &contacts); err != nil || len(contacts) != 1 {
		t.Fatalf("contact list = %v, %v", contacts, err)
	}

	// Errors are the node's words, not gRPC noise.
	ctx := context.Background()
	tests := []struct {
		name  string
		args  []string
		want  string
		stdin string
	}{
		{"unknown group", []string{"send", "nope", "x", "--socket", sa}, `send: no such group: "nope"`, ""},
		{"bad token", []string{"group", "join", "garbage", "--socket", sb, "--timeout", "1s"}, "group join: invalid argument", ""},
		{"follow with limit", []string{"messages", "team", "--follow", "--limit", "1", "--socket", sa}, "cannot be combined", ""},
		{"empty stdin", []string{"send", "team", "-", "--socket", sa}, "send: empty message", ""},
		{"connect without a peer id", []string{"peers", "connect", "/ip4/127.0.0.1/tcp/4001", "--socket", sa}, "peers connect: invalid argument: \"/ip4/127.0.0.1/tcp/4001\" is not a multiaddr ending in /p2p/<peer id>", ""},
		{"connect to itself", []string{"peers", "connect", "/simnet/a/p2p/a", "--socket", sa}, "peers connect: invalid argument: a is this node", ""},
		{"connect to nobody", []string{"peers", "connect", "/simnet/zed/p2p/zed", "--socket", sa}, "peers connect: connect to zed: peer unreachable", ""},
		// The node's one limit, whatever way the text came.
		{"1 MiB on stdin", []string{"send", "team", "--socket", sa}, "send: message to group team is larger than 983040 bytes (960 KiB)", strings.Repeat("x", 1<<20)},
		{"over the limit as words", []string{"send", "team", strings.Repeat("y", apiv1.MaxMessageBytes+1), "--socket", sa}, "send: message to group team is larger than 983040 bytes", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runClient(ctx, tc.stdin, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "rpc error") {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestClientNoNodeRunning(t *testing.T) {
	dir := t.TempDir()
	_, _, err := runClient(context.Background(), "", "id", "--data-dir", dir)
	want := "no skein node is running at " + filepath.Join(dir, "skein.sock") + ": start one with `skein run`"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
}
