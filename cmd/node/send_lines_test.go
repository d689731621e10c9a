package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skein-p2p/skein/plugins/simnet"
)

// TestSendLines: `skein send --lines` sends each non-empty line of stdin
// as a message, in order; --json prints one ack per line sent; a line the
// node refuses is reported with its line number and does not stop the
// others, and send then exits non-zero.
func TestSendLines(t *testing.T) {
	sn := simnet.New()
	defer sn.Close()
	sa, _ := clientNode(t, sn, "a")
	mustRun(t, "", "group", "create", "team", "--socket", sa)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var in strings.Builder
	const n = 600
	for i := range n {
		fmt.Fprintf(&in, "line %d\n", i)
		if i == 10 {
			in.WriteString("\n") // skipped
		}
	}
	out, errOut, err := runClient(ctx, in.String(), "send", "team", "--lines", "--json", "--socket", sa)
	if err != nil {
		t.Fatalf("send --lines: %v\n%s", err, errOut)
	}
	acks := strings.Split(strings.TrimSpace(out), "\n")
	if len(acks) != n {
		t.Fatalf("%d acks, want %d", len(acks), n)
	}
	for i, l := range acks {
		var a struct {
			Line int
			CID  string
		}
		if err := json.Unmarshal([]byte(l), &a); err != nil || a.CID == "" {
			t.Fatalf("ack %q: %v", l, err)
		}
		want := i + 1
		if i > 10 {
			want++ // the empty line
		}
		if a.Line != want {
			t.Fatalf("ack %d is for line %d, want %d", i, a.Line, want)
		}
	}
	if !strings.Contains(errOut, fmt.Sprintf("sent %d messages (0 failed)", n)) {
		t.Errorf("stderr lacks the summary:\n%s", errOut)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(mustRun(t, "", "messages", "team", "--json", "--socket", sa)), "\n") {
		var m struct{ Body string }
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Body)
	}
	for i := range n {
		if got[i] != fmt.Sprint("line ", i) {
			t.Fatalf("message %d is %q: not in line order", i, got[i])
		}
	}

	// A line too long for one message: refused, the rest sent.
	long := strings.Repeat("x", 1<<20)
	_, errOut, err = runClient(ctx, "before\n"+long+"\nafter\n", "send", "team", "--lines", "--socket", sa)
	if err == nil || !strings.Contains(err.Error(), "1 of 3 messages failed") {
		t.Fatalf("send of a long line: %v, want 1 of 3 failed", err)
	}
	if !strings.Contains(errOut, "line 2: message to group team is larger than") {
		t.Fatalf("stderr does not name the line:\n%s", errOut)
	}
	text := mustRun(t, "", "messages", "team", "--socket", sa)
	if !strings.Contains(text, "before") || !strings.Contains(text, "after") {
		t.Fatalf("messages lack the lines around the long one:\n%s", text)
	}
}
