package group

import (
	"slices"
	"testing"

	"github.com/skein-p2p/skein/core/crypto"
)

// An entry a member writes concurrently with its removal reaches replicas
// in different orders: one that gets it before the removal admits it into
// its log, and its later entries link to it. Every replica must then admit
// those later entries too; before admission stopped depending on removals
// (a non-monotone, arrival-order dependent check), the remover refused the
// concurrent entry and, with it, everything the other members wrote after
// it, for good.
func TestConcurrentWriteOfRemovedMemberDoesNotSplitLogs(t *testing.T) {
	tests := []struct {
		name string
		// concurrent makes carol write one entry while she has not yet
		// seen her removal.
		concurrent func(t *testing.T, c *replica)
	}{
		{"metadata", func(t *testing.T, c *replica) {
			if err := c.g.PutMetadata(ctxT(t), []byte("carol, unaware")); err != nil {
				t.Fatal(err)
			}
		}},
		{"message", func(t *testing.T, c *replica) { send(t, c, "carol, unaware") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet()
			rs := n.create(t, "alice", "bob", "carol")
			a, b, c := rs[0], rs[1], rs[2]
			ctx := ctxT(t)

			if err := a.g.RemoveMember(ctx, c.id.AccountKey()); err != nil {
				t.Fatal(err)
			}
			tc.concurrent(t, c)
			// Bob hears from carol first, then from alice.
			pull(t, b, c)
			_ = b.g.Receive(ctx, "alice", a.g.Heads()) // may report carol's entry as refused
			// Bob writes in both logs; his entries link to carol's.
			if err := b.g.PutMetadata(ctx, []byte("bob after removal")); err != nil {
				t.Fatal(err)
			}
			sent := send(t, b, "bob after removal")

			_ = a.g.Receive(ctx, "bob", b.g.Heads()) // may report carol's entry as refused
			for _, h := range b.g.Heads().Meta {
				if ok, err := a.g.meta.Has(ctx, h); err != nil || !ok {
					t.Fatalf("alice lacks bob's metadata head %s (err %v)", h, err)
				}
			}
			for _, h := range b.g.Heads().Messages {
				if ok, err := a.g.msgs.Has(ctx, h); err != nil || !ok {
					t.Fatalf("alice lacks bob's message head %s (err %v)", h, err)
				}
			}
			if got := bodies(t, a.g); !slices.Contains(got, "bob after removal") {
				t.Fatalf("alice reads %q, want bob's message %s", got, sent.CID)
			}
			found := false
			for _, m := range a.g.Metadata() {
				found = found || string(m.Data) == "bob after removal"
			}
			if !found {
				t.Fatal("alice lacks bob's metadata record")
			}
			// Both replicas agree on the membership. (Bob may have delivered
			// carol's message: he read it before he knew of the removal.)
			if got, want := len(a.g.Members()), len(b.g.Members()); got != 2 || want != 2 {
				t.Fatalf("alice sees %d members, bob %d; want 2", got, want)
			}
			if got := bodies(t, a.g); slices.Contains(got, "carol, unaware") {
				t.Fatalf("alice, who knew of the removal, delivered carol's message: %q", got)
			}
		})
	}
}

// Admission no longer refuses a removed device's entries, so the state must:
// an entry a removed member writes after its removal, linked to its old
// heads so that its Lamport time sorts before the removal, must not take
// effect on any replica, whatever order they received it in.
func TestBackdatedEntryOfRemovedMemberTakesNoEffect(t *testing.T) {
	tests := []struct {
		name string
		// bobFirst makes bob receive carol's entry before the removal.
		bobFirst bool
	}{
		{"after the removal", false},
		{"before the removal", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet()
			rs := n.create(t, "alice", "bob", "carol")
			a, b, c := rs[0], rs[1], rs[2]
			ctx := ctxT(t)
			old := c.g.Heads().Meta
			if err := a.g.RemoveMember(ctx, c.id.AccountKey()); err != nil {
				t.Fatal(err)
			}
			// Carol registers an invitation key of her own, backdated.
			w := newRawWriter(t, n, "carol", MetaLogID(a.g.ID()), c.id.Device)
			w.follow(t, old)
			ik, err := crypto.GenerateSigningKey()
			if err != nil {
				t.Fatal(err)
			}
			w.appendMeta(t, a.g, &MetaPayload{Type: MetaInvitationCreated, Epoch: GenesisEpoch, InviteKey: ik.Public()})
			if tc.bobFirst {
				_ = b.g.Receive(ctx, "carol", Heads{Meta: w.l.Heads()})
				_ = b.g.Receive(ctx, "alice", a.g.Heads())
			} else {
				_ = b.g.Receive(ctx, "alice", a.g.Heads())
				_ = b.g.Receive(ctx, "carol", Heads{Meta: w.l.Heads()})
			}
			_ = a.g.Receive(ctx, "carol", Heads{Meta: w.l.Heads()})
			for _, r := range []*replica{a, b} {
				if r.g.state.invites[ik.Public()] != nil {
					t.Fatalf("%s: the removed member's backdated invitation entered the state", r.name)
				}
				if got := len(r.g.Members()); got != 2 {
					t.Fatalf("%s sees %d members, want 2", r.name, got)
				}
			}
		})
	}
}
