package group

import (
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
)

// TestBackdatedInvitationBelowCutoffTakesNoEffect: a removed member
// writes an invitation-created linked to heads older than its own last
// entry, so that its Lamport time is at or below its cutoff; an outsider's
// device-added, backdated below the removal too, uses it. A filter by time
// alone kept the invitation (the outsider became a member, and the next
// rekey sealed its secret to it); the filter keeps only the removed
// device's entries in the causal past of the removal, so neither takes
// effect.
func TestBackdatedInvitationBelowCutoffTakesNoEffect(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	rs := n.create(t, "alice", "bob", "carol")
	a, b, c := rs[0], rs[1], rs[2]
	// Carol's heads before her last entry, then her last entry: her
	// cutoff will be that entry's time.
	old := c.g.Heads().Meta
	if err := c.g.PutMetadata(ctx, []byte("carol's last")); err != nil {
		t.Fatal(err)
	}
	syncAll(t, a, b, c)
	for range 3 { // alice's removal sorts well after carol's last entry
		if err := a.g.PutMetadata(ctx, []byte("alice")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.g.RemoveMember(ctx, c.id.AccountKey()); err != nil {
		t.Fatal(err)
	}
	// Carol, removed, registers an invitation key linked below her last
	// entry: its time is at most her cutoff.
	w := newRawWriter(t, n, "carol", MetaLogID(a.g.ID()), c.id.Device)
	w.follow(t, old)
	ik, _ := crypto.GenerateSigningKey()
	inv := w.appendMeta(t, a.g, &MetaPayload{Type: MetaInvitationCreated, Epoch: GenesisEpoch, InviteKey: ik.Public()})
	// Mallory, a stranger, joins with it, also below the removal.
	mallory := newIdentity(t)
	mw := newRawWriter(t, n, "mallory", MetaLogID(a.g.ID()), mallory.Device)
	mw.follow(t, w.l.Heads())
	sig, err := ik.Sign(domainDeviceAdded, deviceAddedMessage(a.g.ID(), GenesisEpoch, AuthInvitation, ik.Public(), mallory.Cert))
	if err != nil {
		t.Fatal(err)
	}
	da := mw.appendMeta(t, a.g, &MetaPayload{Type: MetaDeviceAdded, Epoch: GenesisEpoch, Cert: mallory.Cert, AuthType: AuthInvitation, InviteKey: ik.Public(), AuthSig: sig})
	t.Logf("carol's forged invitation at time %d, mallory's device-added at %d", inv.Time, da.Time)
	_ = a.g.Receive(ctx, "mallory", Heads{Meta: []cid.Cid{da.CID()}})
	_ = b.g.Receive(ctx, "mallory", Heads{Meta: []cid.Cid{da.CID()}})
	_ = b.g.Receive(ctx, "alice", a.g.Heads())
	for _, r := range []*replica{a, b} {
		for _, m := range r.g.Members() {
			if m.Account == mallory.AccountKey() {
				t.Errorf("%s: the stranger is a member through a removed member's backdated invitation", r.name)
			}
		}
	}
	// And the next rekey would seal its secret to the stranger's device.
	if err := b.g.RemoveMember(ctx, a.id.AccountKey()); err != nil {
		t.Fatal(err)
	}
	if b.g.state.member(b.g.state.latestEpoch(), mallory.DeviceKey()) {
		t.Error("bob's rekey sealed the new epoch's secret to the stranger")
	}
}
