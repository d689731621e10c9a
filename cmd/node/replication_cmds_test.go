package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// skeinJSON runs a command that prints JSON and decodes it into v.
func skeinJSON(t testing.TB, env []string, v any, args ...string) {
	t.Helper()
	r := skein(t, env, args...)
	if r.code != 0 {
		t.Fatalf("skein %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("skein %s: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

// TestReplicationNodeThroughBinary runs three real nodes, plugins out of
// process: a replication node made by the preset, and two members. The
// members reach each other only through the replication node; the second
// member joins and reads the first one's messages after the first one
// stopped.
func TestReplicationNodeThroughBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping three real nodes")
	}
	env := testEnv(t)
	base := t.TempDir()
	rDir, aDir, bDir := filepath.Join(base, "r"), filepath.Join(base, "a"), filepath.Join(base, "b")
	if r := skein(t, env, "init", "--preset", "replication", "--data-dir", rDir); r.code != 0 {
		t.Fatalf("init --preset replication: %s", r.stderr)
	}
	if r := skein(t, env, "init", "--preset", "nope", "--data-dir", filepath.Join(base, "x")); r.code == 0 || !strings.Contains(r.stderr, "no such preset (have: "+strings.Join(presetNames(), ", ")+")") {
		t.Fatalf("init with an unknown preset: exit %d: %s", r.code, r.stderr)
	}
	if r := skein(t, env, "config", "check", "--config", filepath.Join(rDir, "skein.yaml")); r.code != 0 {
		t.Fatalf("the preset does not check: %s", r.stderr)
	}
	for _, d := range []string{aDir, bDir} {
		if r := skein(t, env, "init", "--data-dir", d); r.code != 0 {
			t.Fatalf("init: %s", r.stderr)
		}
	}
	rNode := startKill9Node(t, env, rDir)
	defer rNode.stop(t)
	fi, err := os.Stat(filepath.Join(rDir, "replication.secret"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("replication.secret: %v, mode %v; want 0600", err, fi)
	}
	var tok struct {
		Token string   `json:"token"`
		Peer  string   `json:"peer"`
		Addrs []string `json:"addrs"`
	}
	skeinJSON(t, env, &tok, "replication", "token", "--json", "--data-dir", rDir)
	if !strings.HasPrefix(tok.Token, "skein1-") || len(tok.Addrs) == 0 {
		t.Fatalf("token = %+v", tok)
	}
	if r := skein(t, env, "replication", "token", "--data-dir", aDir); r.code == 0 {
		t.Fatal("a plain node printed a replication token")
	}

	// a talks only to r (through the registration); b is bootstrapped to r.
	aNode := startKill9Node(t, env, aDir)
	if r := skein(t, env, "group", "create", "team", "--data-dir", aDir); r.code != 0 {
		t.Fatalf("group create: %s", r.stderr)
	}
	if r := skein(t, env, "group", "replicate", "team", "skein1-bogus", "--data-dir", aDir); r.code == 0 || !strings.Contains(r.stderr, "token") {
		t.Fatalf("replicate with a bad token: exit %d: %s", r.code, r.stderr)
	}
	if r := skein(t, env, "group", "replicate", "team", tok.Token, "--data-dir", aDir); r.code != 0 {
		t.Fatalf("group replicate: %s", r.stderr)
	}
	inv := skein(t, env, "group", "invite", "team", "--data-dir", aDir)
	if inv.code != 0 {
		t.Fatalf("invite: %s", inv.stderr)
	}
	bEnv := append(env, "SKEIN_PLUGINS__NETWORK__CONFIG__BOOTSTRAP=["+tok.Addrs[0]+"/p2p/"+tok.Peer+"]")
	bNode := startKill9Node(t, bEnv, bDir)
	defer bNode.stop(t)
	if r := skein(t, bEnv, "group", "join", "--name", "team", strings.TrimSpace(inv.stdout), "--data-dir", bDir); r.code != 0 {
		t.Fatalf("join through the replication node: %s", r.stderr)
	}
	// a shares its sending chain with b once it has applied b's join (a
	// new member reads from the point its members learn of it).
	waitUntil(t, "a knows b joined", func() bool {
		var ms []json.RawMessage
		skeinJSON(t, env, &ms, "group", "members", "team", "--json", "--data-dir", aDir)
		return len(ms) == 2
	})
	for _, body := range []string{"one", "two", "three"} {
		if r := skein(t, env, "send", "team", body, "--data-dir", aDir); r.code != 0 {
			t.Fatalf("send: %s", r.stderr)
		}
	}
	// Wait until r holds a's messages, then stop a: b reads them from r.
	type replica struct {
		Group string `json:"group"`
		Kind  string `json:"kind"`
		Sync  struct {
			Logs []struct {
				Log        string   `json:"log"`
				LocalHeads []string `json:"local_heads"`
			} `json:"logs"`
		} `json:"sync"`
	}
	var aSync []struct {
		Logs []struct {
			Log        string   `json:"log"`
			LocalHeads []string `json:"local_heads"`
		} `json:"logs"`
	}
	skeinJSON(t, env, &aSync, "sync", "status", "team", "--json", "--data-dir", aDir)
	// Both logs: the messages and the metadata (a's chain key for b).
	want := strings.Join(aSync[0].Logs[0].LocalHeads, ",") + ";" + strings.Join(aSync[0].Logs[1].LocalHeads, ",")
	waitUntil(t, "the replication node holds a's logs", func() bool {
		var reps []replica
		skeinJSON(t, env, &reps, "replication", "list", "--json", "--data-dir", rDir)
		return len(reps) == 1 && reps[0].Kind == "multi" && len(reps[0].Sync.Logs) == 2 &&
			strings.Join(reps[0].Sync.Logs[0].LocalHeads, ",")+";"+strings.Join(reps[0].Sync.Logs[1].LocalHeads, ",") == want
	})
	aNode.stop(t)
	waitUntil(t, "b reads a's messages", func() bool {
		r := skein(t, env, "messages", "team", "--json", "--data-dir", bDir)
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
		return strings.Join(got, ",") == "one,two,three"
	})
	// b registers the group too: both are recorded. The text and the JSON
	// say the same entry count, and the node's log names the group by the
	// id replication list shows.
	if r := skein(t, bEnv, "group", "replicate", "team", tok.Token, "--data-dir", bDir); r.code != 0 {
		t.Fatalf("group replicate from b: %s", r.stderr)
	}
	text := skein(t, env, "replication", "list", "--data-dir", rDir)
	if text.code != 0 || !strings.Contains(text.stdout, "multi") || !strings.Contains(text.stdout, "(and 1 more peer)") {
		t.Fatalf("replication list: exit %d\n%s%s", text.code, text.stdout, text.stderr)
	}
	var reps []struct {
		Group         string `json:"group"`
		Entries       uint64 `json:"entries"`
		Registrations []struct {
			Peer string `json:"peer"`
		} `json:"registrations"`
	}
	skeinJSON(t, env, &reps, "replication", "list", "--json", "--data-dir", rDir)
	if len(reps) != 1 || len(reps[0].Registrations) != 2 || reps[0].Entries == 0 ||
		!strings.Contains(text.stdout, fmt.Sprintf("multi, %d entries,", reps[0].Entries)) {
		t.Fatalf("replication list --json = %+v; text:\n%s", reps, text.stdout)
	}
	if line := rNode.lines.wait(t, "group="+reps[0].Group+" peer=", 10*time.Second); !strings.Contains(line, `msg="group registered"`) {
		t.Fatalf("the first line naming the group is %q, want its registration", line)
	}
	if r := skein(t, env, "replication", "remove", reps[0].Group[:12], "--data-dir", rDir); r.code != 0 || !strings.Contains(r.stdout, "removed "+reps[0].Group) {
		t.Fatalf("replication remove: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := skein(t, env, "replication", "list", "--data-dir", rDir); r.code != 0 || !strings.Contains(r.stdout, "no groups registered") {
		t.Fatalf("replication list after remove: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
