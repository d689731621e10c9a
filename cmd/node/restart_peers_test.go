package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback TCP port free now.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// bodies returns the bodies `skein messages --json` lists.
func bodies(t testing.TB, env []string, dir, group string) []string {
	t.Helper()
	r := skein(t, env, "messages", group, "--json", "--data-dir", dir)
	if r.code != 0 {
		t.Fatalf("messages: %s", r.stderr)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m struct {
			Body string `json:"body"`
		}
		if line != "" && json.Unmarshal([]byte(line), &m) == nil {
			got = append(got, m.Body)
		}
	}
	return got
}

// TestPeersFoundAgainAfterRestart is the quick start's alice and bob: bob
// meets alice through a bootstrap address given only in his environment,
// they share a group, and both are restarted with a plain `skein run`. They
// find each other again (each remembered the other: bob the peer he
// dialled, alice the peer that dialled her) and the messages alice sent
// while bob was away arrive. On the way, `peers connect` to a wrong port of
// alice (already connected) fails and leaves no trace in what bob
// remembers.
func TestPeersFoundAgainAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping two real nodes restarted")
	}
	env := testEnv(t)
	base := t.TempDir()
	aDir, bDir := filepath.Join(base, "alice"), filepath.Join(base, "bob")
	for _, d := range []string{aDir, bDir} {
		if r := skein(t, env, "init", "--data-dir", d); r.code != 0 {
			t.Fatalf("init: %s", r.stderr)
		}
	}
	aEnv := append(slices.Clone(env), listenEnv+"=[/ip4/127.0.0.1/tcp/"+freePort(t)+"]")
	bEnv := append(slices.Clone(env), listenEnv+"=[/ip4/127.0.0.1/tcp/"+freePort(t)+"]")
	alice := startKill9Node(t, aEnv, aDir)
	var id struct {
		PeerID string   `json:"peer_id"`
		Addrs  []string `json:"addrs"`
	}
	skeinJSON(t, env, &id, "id", "--json", "--data-dir", aDir)
	if len(id.Addrs) == 0 {
		t.Fatalf("alice has no address: %+v", id)
	}
	aAddr := id.Addrs[0]
	if !strings.Contains(aAddr, "/p2p/") {
		aAddr += "/p2p/" + id.PeerID
	}
	bob := startKill9Node(t, append(slices.Clone(bEnv), "SKEIN_PLUGINS__NETWORK__CONFIG__BOOTSTRAP=["+aAddr+"]"), bDir)

	if r := skein(t, env, "group", "create", "team", "--data-dir", aDir); r.code != 0 {
		t.Fatalf("group create: %s", r.stderr)
	}
	inv := skein(t, env, "group", "invite", "team", "--data-dir", aDir)
	if inv.code != 0 {
		t.Fatalf("invite: %s", inv.stderr)
	}
	if r := skein(t, env, "group", "join", "--name", "team", strings.TrimSpace(inv.stdout), "--data-dir", bDir); r.code != 0 {
		t.Fatalf("join: %s", r.stderr)
	}
	waitUntil(t, "alice knows bob joined", func() bool {
		var ms []json.RawMessage
		skeinJSON(t, env, &ms, "group", "members", "team", "--json", "--data-dir", aDir)
		return len(ms) == 2
	})
	if r := skein(t, env, "send", "team", "before", "--data-dir", aDir); r.code != 0 {
		t.Fatalf("send: %s", r.stderr)
	}
	waitUntil(t, "bob reads alice's first message", func() bool { return slices.Contains(bodies(t, env, bDir, "team"), "before") })

	// A wrong port of a peer bob is connected to: refused, not remembered.
	wrongPort := freePort(t)
	wrong := "/ip4/127.0.0.1/tcp/" + wrongPort + "/p2p/" + id.PeerID
	if r := skein(t, env, "peers", "connect", wrong, "--timeout", "5s", "--data-dir", bDir); r.code == 0 || !strings.Contains(r.stderr, "/tcp/"+wrongPort) {
		t.Fatalf("peers connect to a wrong port: exit %d, stderr %q; want a failure naming the address", r.code, r.stderr)
	}

	bob.stop(t)
	for _, body := range []string{"one", "two", "three"} {
		if r := skein(t, env, "send", "team", body, "--data-dir", aDir); r.code != 0 {
			t.Fatalf("send: %s", r.stderr)
		}
	}
	alice.stop(t)
	saved, err := os.ReadFile(filepath.Join(bDir, "network", "wanted-peers.json"))
	if err != nil || !strings.Contains(string(saved), id.PeerID) || strings.Contains(string(saved), "/tcp/"+wrongPort) {
		t.Fatalf("bob's remembered peers (%v):\n%s\nwant alice, without the wrong port", err, saved)
	}

	// Both restarted plainly: no bootstrap anywhere.
	alice = startKill9Node(t, aEnv, aDir)
	defer alice.stop(t)
	bob = startKill9Node(t, bEnv, bDir)
	defer bob.stop(t)
	// --wait returns once bob is in sync: alice reachable, synced, nothing
	// missing; so the messages are there.
	r := skein(t, env, "sync", "status", "team", "--wait", "60s", "--data-dir", bDir)
	if r.code != 0 {
		t.Fatalf("sync status --wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("bob's sync status --wait:\n%s%s", r.stderr, r.stdout)
	if got := bodies(t, env, bDir, "team"); !slices.Contains(got, "one") || !slices.Contains(got, "two") || !slices.Contains(got, "three") {
		t.Fatalf("bob in sync, but holds %q", got)
	}
	bob.lines.wait(t, "catch-up finished", 10*time.Second)
	// The log counts entries, not heads: the three messages (one head).
	waitUntil(t, "bob's log says the catch-up fetched the 3 messages", func() bool {
		for _, l := range strings.Split(bob.lines.snapshot(), "\n") {
			if strings.Contains(l, `msg="catch-up finished"`) && strings.Contains(l, "channel=messages") && strings.Contains(l, " fetched=3 ") && strings.Contains(l, " added=3 ") {
				return true
			}
		}
		return false
	})
	alice.lines.wait(t, "group peer found", 10*time.Second)
}

// TestSyncStatusAloneIsNotInSync: a node whose group has no peer is never
// "in sync"; it says why, and --wait fails with that reason.
func TestSyncStatusAloneIsNotInSync(t *testing.T) {
	env := testEnv(t)
	dir := filepath.Join(t.TempDir(), "alone")
	if r := skein(t, env, "init", "--data-dir", dir); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	n := startKill9Node(t, env, dir)
	defer n.stop(t)
	if r := skein(t, env, "group", "create", "team", "--data-dir", dir); r.code != 0 {
		t.Fatalf("group create: %s", r.stderr)
	}
	r := skein(t, env, "sync", "status", "--data-dir", dir)
	if r.code != 0 || strings.Contains(r.stdout, "in sync") || !strings.Contains(r.stdout, "no peer reachable since the node started, never synced") {
		t.Fatalf("sync status of a group alone: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var st []struct {
		InSync bool   `json:"in_sync"`
		State  string `json:"state"`
	}
	skeinJSON(t, env, &st, "sync", "status", "--json", "--data-dir", dir)
	if len(st) != 1 || st[0].InSync || st[0].State != "no peer reachable" {
		t.Fatalf("sync status --json = %+v", st)
	}
	r = skein(t, env, "sync", "status", "--wait", "1s", "--data-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "not in sync after 1s: team: no peer reachable") {
		t.Fatalf("sync status --wait alone: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The DHT knows no server: each group's rendezvous says so briefly,
	// and one note explains it, not libp2p's error on every line.
	if r := skein(t, env, "group", "create", "other", "--data-dir", dir); r.code != 0 {
		t.Fatalf("group create: %s", r.stderr)
	}
	var out string
	waitUntil(t, "both groups' rendezvous ran", func() bool {
		out = skein(t, env, "sync", "status", "--data-dir", dir).stdout
		return strings.Count(out, "rdv ") == 2
	})
	if strings.Count(out, "no DHT server to ask") != 2 || strings.Count(out, "knows no DHT server") != 1 || strings.Contains(out, "failed to find any peer in table") {
		t.Fatalf("sync status with no DHT server:\n%s", out)
	}
}
