package messenger_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// TestUnheldUntilAnotherNodeHoldsIt: messages sent while cut off from
// every peer are counted as on no other node; Flush cannot push them while
// no peer is connected and says so; once a peer is back, Flush pushes
// them, returns when a peer holds them, and they are no longer counted.
func TestUnheldUntilAnotherNodeHoldsIt(t *testing.T) {
	ctx := context.Background()
	sn, nodes, ref := threeMembers(t)
	a := nodes[0]
	waitFor(t, "a's earlier entries held elsewhere", func() bool {
		u, err := a.m.Unheld(ctx, ref)
		return err == nil && len(u) == 0
	})
	sn.Partition([]string{"a"}, []string{"b", "c"})
	waitFor(t, "a sees no peer", func() bool {
		st, err := a.m.SyncStatus(ctx, ref)
		return err == nil && st[0].State() == messenger.StateUnreachable
	})
	var sent []string
	for i := range 3 {
		msg, err := a.m.Send(ctx, ref, fmt.Appendf(nil, "alone %d", i))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, msg.CID.String())
	}
	u, err := a.m.Unheld(ctx, ref)
	if err != nil || len(u) != 3 {
		t.Fatalf("unheld = %v, %v; want the 3 messages sent alone", u, err)
	}
	st, err := a.m.SyncStatus(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(st[0].Logs, func(l messenger.LogSync) bool { return l.Log == "messages" }); i < 0 || st[0].Logs[i].Unheld != 3 {
		t.Fatalf("sync status logs %+v; want 3 unheld messages", st[0].Logs)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	left := a.m.Flush(short)
	cancel()
	// The 3 messages, and metadata of a's (a chain key shared) if any.
	if len(left) != 1 || slices.Collect(maps.Values(left))[0] < 3 {
		t.Fatalf("Flush with no peer = %v; want at least 3 left in one group", left)
	}

	sn.Heal()
	waitFor(t, "a reaches a peer again", func() bool {
		st, err := a.m.SyncStatus(ctx, ref)
		return err == nil && st[0].Reachable
	})
	fctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	if left := a.m.Flush(fctx); len(left) != 0 {
		t.Fatalf("Flush with peers back = %v; want nothing left", left)
	}
	if u, err := a.m.Unheld(ctx, ref); err != nil || len(u) != 0 {
		t.Fatalf("after Flush unheld = %v, %v", u, err)
	}
	// Whoever acknowledged them holds them.
	var holders int
	for _, n := range nodes[1:] {
		if slices.ContainsFunc(cids(t, n, ref), func(c cid.Cid) bool { return c.String() == sent[2] }) {
			holders++
		}
	}
	if holders == 0 {
		t.Fatal("Flush returned, but no other member holds the last message")
	}
}

// TestLastReachableSurvivesRestart: a member cut off and restarted says
// since when no peer has been reachable, not "since the node started".
func TestLastReachableSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	sn, nodes, ref := threeMembers(t)
	a := nodes[0]
	sn.Partition([]string{"a"}, []string{"b", "c"})
	waitFor(t, "a sees no peer", func() bool {
		st, err := a.m.SyncStatus(ctx, ref)
		return err == nil && st[0].State() == messenger.StateUnreachable
	})
	st, _ := a.m.SyncStatus(ctx, ref)
	lost := st[0].LastReachable
	if lost.IsZero() {
		t.Fatal("no last reachable time while running")
	}
	// Events still arriving until the node stops may move the time on: the
	// time kept is between lost and the end of the stop, never one of the
	// new run.
	if err := a.m.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	m, err := messenger.New(ctx, messenger.Config{Keystore: a.ks, Store: a.st, Network: a.net})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st, err = m.SyncStatus(ctx, ref)
	if err != nil || st[0].State() != messenger.StateUnreachable || st[0].LastReachable.Before(lost.Round(0)) || st[0].LastReachable.After(stopped) {
		t.Fatalf("after restart: %+v, %v; want unreachable since a time between %v and %v", st, err, lost, stopped)
	}
}

// SyncStatus and metrics scrapes ask which own entries no other node holds
// again and again: the answer is reckoned once per state of the log and of
// the peers' heads, and again when either changes.
func TestUnheldCachedUntilTheLogChanges(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	defer sn.Close()
	a := newTestNode(t, sn, "a")
	if _, err := a.m.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := a.m.Send(ctx, "g", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	unheld := func() int {
		t.Helper()
		u, err := a.m.Unheld(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		return len(u)
	}
	if n := unheld(); n != 3 {
		t.Fatalf("unheld %d, want 3", n)
	}
	walks := a.m.UnheldWalks()
	for range 5 {
		if n := unheld(); n != 3 {
			t.Fatalf("unheld %d from the cache, want 3", n)
		}
		if _, err := a.m.SyncStatus(ctx, "g"); err != nil {
			t.Fatal(err)
		}
	}
	if w := a.m.UnheldWalks(); w != walks {
		t.Fatalf("%d reckonings for an unchanged log, want none after the first", w-walks)
	}
	if _, err := a.m.Send(ctx, "g", []byte("one more")); err != nil {
		t.Fatal(err)
	}
	if n := unheld(); n != 4 {
		t.Fatalf("unheld %d after another send, want 4", n)
	}
	if w := a.m.UnheldWalks(); w == walks {
		t.Fatal("the log changed and the cached answer was used")
	}
}
