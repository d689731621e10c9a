package group

import (
	"errors"
	"slices"
	"testing"

	"github.com/skein-p2p/skein/core/crypto"
)

// TestReplicationNode: a node that knows only the group's public key
// verifies and stores both logs, refuses what the members refuse, serves a
// member who was offline, and reads nothing.
func TestReplicationNode(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	rs := n.create(t, "alice", "bob")
	a, b := rs[0], rs[1]
	g := replicate(t, a.g, n.storage())
	repl := &replica{name: "replica", g: g}
	pull(t, repl, a)
	if g.Kind() != KindMulti || len(g.Members()) != 2 {
		t.Fatalf("replica: kind %s, %d members", g.Kind(), len(g.Members()))
	}

	// Bob is offline; alice sends and only the replica gets it.
	send(t, a, "while bob was away")
	pull(t, repl, a)
	// Mallory pushes a message built on alice's; the replica refuses it.
	mallory := newIdentity(t)
	w := newRawWriter(t, n, "mallory", MessagesLogID(a.g.ID()), mallory.Device)
	w.follow(t, a.g.Heads().Messages)
	w.append(t, forgeEnvelope(t, a.g, mallory.DeviceKey(), GenesisEpoch, 0, []byte("spam"), crypto.RandomKey()))
	err := g.Receive(ctx, "mallory", Heads{Messages: w.l.Heads()})
	expectRejected(t, err, ErrNotMember)

	// Bob catches up from the replica alone.
	pull(t, b, repl)
	if got := bodies(t, b.g); !slices.Equal(got, []string{"while bob was away"}) {
		t.Fatalf("bob has %q", got)
	}
	// The replica holds the ciphertext and no plaintext or key.
	if got := bodies(t, g); len(got) != 0 {
		t.Fatalf("replica opened %q", got)
	}
	if len(g.secrets) != 0 || g.msgs.Len() != 1 {
		t.Fatalf("replica holds %d secrets and %d message entries", len(g.secrets), g.msgs.Len())
	}
	if _, err := g.Send(ctx, []byte("x")); !errors.Is(err, ErrNotMember) {
		t.Fatalf("replica sends: %v", err)
	}
}
