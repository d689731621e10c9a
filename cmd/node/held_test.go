package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStopPushesToReplicationNode: a member sends and is stopped at once;
// before it exits it has made sure the replication node holds what it
// sent, and `messages --json` said beforehand which messages no other node
// held. A `messages --follow` still open does not hold the stop up.
func TestStopPushesToReplicationNode(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping two real nodes")
	}
	env := testEnv(t)
	base := t.TempDir()
	rDir, aDir := filepath.Join(base, "r"), filepath.Join(base, "a")
	if r := skein(t, env, "init", "--preset", "replication", "--data-dir", rDir); r.code != 0 {
		t.Fatalf("init --preset replication: %s", r.stderr)
	}
	if r := skein(t, env, "init", "--data-dir", aDir); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	rNode := startKill9Node(t, env, rDir)
	var tok struct {
		Token string `json:"token"`
	}
	skeinJSON(t, env, &tok, "replication", "token", "--json", "--data-dir", rDir)
	aNode := startKill9Node(t, env, aDir)
	if r := skein(t, env, "group", "create", "team", "--data-dir", aDir); r.code != 0 {
		t.Fatalf("group create: %s", r.stderr)
	}
	if r := skein(t, env, "group", "replicate", "team", tok.Token, "--data-dir", aDir); r.code != 0 {
		t.Fatalf("group replicate: %s", r.stderr)
	}
	follow := startFollow(t, env, aDir)

	var sent []string
	for i := range 5 {
		var m struct {
			CID           string `json:"cid"`
			HeldElsewhere bool   `json:"held_elsewhere"`
		}
		skeinJSON(t, env, &m, "send", "team", "burst "+string(rune('a'+i)), "--json", "--data-dir", aDir)
		sent = append(sent, m.CID)
	}
	follow.lines.wait(t, "burst e", 10*time.Second) // the follow is subscribed
	aNode.stop(t)                                   // at once
	if !follow.ended(10 * time.Second) {
		t.Fatal("messages --follow still runs after its node stopped")
	}
	aNode.lines.wait(t, "everything sent is held by another node", time.Second)

	type replica struct {
		Sync struct {
			Logs []struct {
				Log        string   `json:"log"`
				LocalHeads []string `json:"local_heads"`
				Entries    int      `json:"entries"`
			} `json:"logs"`
		} `json:"sync"`
	}
	var reps []replica
	skeinJSON(t, env, &reps, "replication", "list", "--json", "--data-dir", rDir)
	if len(reps) != 1 {
		t.Fatalf("replication list: %+v", reps)
	}
	i := slices.IndexFunc(reps[0].Sync.Logs, func(l struct {
		Log        string   `json:"log"`
		LocalHeads []string `json:"local_heads"`
		Entries    int      `json:"entries"`
	}) bool {
		return l.Log == "messages"
	})
	if i < 0 || !slices.Contains(reps[0].Sync.Logs[i].LocalHeads, sent[len(sent)-1]) {
		t.Fatalf("the replication node's message log %+v does not hold a's last message %s", reps[0].Sync.Logs, sent[len(sent)-1])
	}

	// Started again alone (the replication node gone), a says each message
	// is held elsewhere; a new one is not, and sync status counts it.
	rNode.stop(t)
	aNode = startKill9Node(t, env, aDir)
	defer aNode.stop(t)
	if r := skein(t, env, "send", "team", "unseen", "--data-dir", aDir); r.code != 0 {
		t.Fatalf("send: %s", r.stderr)
	}
	r := skein(t, env, "messages", "team", "--json", "--data-dir", aDir)
	held := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m struct {
			Body          string `json:"body"`
			HeldElsewhere bool   `json:"held_elsewhere"`
		}
		if json.Unmarshal([]byte(line), &m) == nil {
			held[m.Body] = m.HeldElsewhere
		}
	}
	if !held["burst e"] || held["unseen"] {
		t.Fatalf("held_elsewhere by body: %v; want the burst held, unseen not", held)
	}
	if st := skein(t, env, "sync", "status", "team", "--data-dir", aDir); !strings.Contains(st.stdout, "1 of your messages not yet on any other node") {
		t.Fatalf("sync status:\n%s", st.stdout)
	}
}

// followProc is a `skein messages --follow` running in the background.
type followProc struct {
	lines *lineWaiter
	done  chan struct{}
}

// startFollow runs `messages team --follow --json` against the node at
// dir until that node stops.
func startFollow(t testing.TB, env []string, dir string) *followProc {
	t.Helper()
	cmd := exec.Command(skeinBin, "messages", "team", "--follow", "--json", "--data-dir", dir)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &followProc{lines: newLineWaiter(out), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(f.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-f.done
	})
	return f
}

// ended reports whether the follow ended within d.
func (f *followProc) ended(d time.Duration) bool {
	select {
	case <-f.done:
		return true
	case <-time.After(d):
		return false
	}
}
