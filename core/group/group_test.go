package group

import (
	"slices"
	"testing"
)

func TestCreateInviteJoinSend(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob")
	a, b := rs[0], rs[1]
	send(t, a, "hello bob")
	send(t, b, "hello alice")
	syncAll(t, a, b)
	ga, gb := bodies(t, a.g), bodies(t, b.g)
	if len(ga) != 2 || !slices.Equal(ga, gb) {
		t.Fatalf("alice sees %q, bob sees %q", ga, gb)
	}
	if m := a.g.Members(); len(m) != 2 {
		t.Fatalf("members: %d, want 2", len(m))
	}

	// A late joiner receives the history without errors (it cannot read
	// what was sent before it joined) and reads what follows.
	inv, err := a.g.Invite(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	cid := newIdentity(t)
	gc, err := Join(ctxT(t), cid, inv, n.storage(), "alice", a.g.Heads())
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	c := &replica{name: "carol", id: cid, g: gc}
	syncAll(t, a, b, c)
	if got := bodies(t, gc); len(got) != 0 {
		t.Fatalf("carol read history from before she joined: %q", got)
	}
	send(t, b, "welcome carol")
	syncAll(t, a, b, c)
	if got := bodies(t, gc); !slices.Equal(got, []string{"welcome carol"}) {
		t.Fatalf("carol has %q", got)
	}
	if gc.msgs.Len() != 3 {
		t.Fatalf("carol's message log has %d entries, want 3", gc.msgs.Len())
	}
}
