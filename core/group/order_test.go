package group

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/skein-p2p/skein/core/log"
)

// A group whose message log has another order lists concurrent messages
// in that order on every member, and keeps it: reopening with another
// order fails with log.ErrOrderMismatch.
func TestGroupMessageOrder(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	opt := WithMessageOrder(log.LamportCIDOrder{})
	var rs []*replica
	for i, name := range []string{"alice", "bob", "carol"} {
		r := &replica{name: name, id: newIdentity(t)}
		var err error
		if i == 0 {
			r.g, err = Create(ctx, r.id, n.storage(), opt)
		} else {
			var inv *Invitation
			if inv, err = rs[0].g.Invite(ctx); err == nil {
				r.g, err = Join(ctx, r.id, inv, n.storage(), "alice", rs[0].g.Heads(), opt)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.g.Close() })
		rs = append(rs, r)
		syncAll(t, rs...)
	}
	for round := range 3 {
		for _, r := range rs {
			send(t, r, r.name+string(rune('0'+round)))
		}
	}
	syncAll(t, rs...)
	want := bodies(t, rs[0].g)
	if len(want) != 9 {
		t.Fatalf("alice reads %d messages, want 9", len(want))
	}
	for _, r := range rs[1:] {
		if got := bodies(t, r.g); !slices.Equal(got, want) {
			t.Fatalf("%s lists %q, alice %q", r.name, got, want)
		}
	}
	// Listed by time, then CID: concurrent messages of different writers
	// interleave by hash, not by writer.
	var prev *Message
	for m, err := range rs[0].g.Messages(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if prev != nil && prev.Time == m.Time && bytes.Compare(prev.CID.Bytes(), m.CID.Bytes()) > 0 {
			t.Fatalf("messages at time %d listed out of CID order", m.Time)
		}
		if prev != nil && prev.Time > m.Time {
			t.Fatal("messages listed out of time order")
		}
		prev = m
	}
	ks := testKeystore(t)
	st := n.storage()
	g, err := Create(ctx, newIdentity(t), st, opt)
	if err != nil {
		t.Fatal(err)
	}
	id := g.me
	if err := g.SaveKeys(ks); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if _, err := Open(ctx, id, ks, g.ID(), st); !errors.Is(err, log.ErrOrderMismatch) {
		t.Fatalf("reopen with the default order: %v, want log.ErrOrderMismatch", err)
	}
	g2, err := Open(ctx, id, ks, g.ID(), st, opt)
	if err != nil {
		t.Fatalf("reopen with the same order: %v", err)
	}
	g2.Close()
}
