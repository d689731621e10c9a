package group

import (
	"errors"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
)

// addDevice certifies a new device of r's account and joins it to r's
// group with an invitation r writes.
func (n *net) addDevice(t testing.TB, r *replica, name string) *replica {
	t.Helper()
	ctx := ctxT(t)
	id, err := NewDevice(r.id.Account, r.id.ContactKey)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := r.g.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Join(ctx, id, inv, n.storage(), r.name, r.g.Heads())
	if err != nil {
		t.Fatalf("%s joins: %v", name, err)
	}
	t.Cleanup(func() { g.Close() })
	return &replica{name: name, id: id, g: g}
}

func TestRemoveDevice(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	rs := n.create(t, "laptop", "bob")
	laptop, bob := rs[0], rs[1]
	phone := n.addDevice(t, laptop, "phone")
	all := []*replica{laptop, bob, phone}
	syncAll(t, all...)
	send(t, phone, "from the phone")
	send(t, laptop, "from the laptop")
	syncAll(t, all...)
	for _, r := range all {
		if got := bodies(t, r.g); !slices.Contains(got, "from the phone") || !slices.Contains(got, "from the laptop") {
			t.Fatalf("%s reads %q before the removal", r.name, got)
		}
	}
	if m := bob.g.Members(); len(m) != 2 {
		t.Fatalf("bob sees %d members, want 2", len(m))
	}

	before := laptop.g.Epoch()
	if err := laptop.g.RemoveDevice(ctx, phone.id.DeviceKey()); err != nil {
		t.Fatal(err)
	}
	if laptop.g.Epoch() == before {
		t.Fatal("removing a device did not start a new epoch")
	}
	// The phone, unaware, writes past its cutoff; bob learns of the
	// removal and of the phone's message.
	send(t, phone, "phone, after its removal")
	pull(t, bob, laptop)
	_ = bob.g.Receive(ctx, "phone", phone.g.Heads()) // the phone's entry is refused
	_ = laptop.g.Receive(ctx, "phone", phone.g.Heads())
	send(t, laptop, "after removal")
	send(t, bob, "bob after removal")
	pull(t, bob, laptop)
	pull(t, laptop, bob)
	_ = phone.g.Receive(ctx, "laptop", laptop.g.Heads())
	_ = phone.g.Receive(ctx, "bob", bob.g.Heads())

	for _, r := range []*replica{laptop, bob} {
		got := bodies(t, r.g)
		if slices.Contains(got, "phone, after its removal") {
			t.Fatalf("%s delivered the removed phone's message: %q", r.name, got)
		}
		if !slices.Contains(got, "after removal") || !slices.Contains(got, "bob after removal") {
			t.Fatalf("%s reads %q, want the messages after the removal", r.name, got)
		}
		if r.g.HasDevice(phone.id.DeviceKey()) || !r.g.DeviceRemoved(phone.id.DeviceKey()) {
			t.Fatalf("%s still counts the phone as a device of the group", r.name)
		}
		m := r.g.Members()
		if len(m) != 2 {
			t.Fatalf("%s: %d members, want 2 (the account stays)", r.name, len(m))
		}
		for _, mb := range m {
			if mb.Account == laptop.id.AccountKey() && len(mb.Devices) != 1 {
				t.Fatalf("%s: the account has devices %v, want the laptop only", r.name, mb.Devices)
			}
		}
	}
	if got := bodies(t, phone.g); slices.Contains(got, "after removal") || slices.Contains(got, "bob after removal") {
		t.Fatalf("the removed phone reads %q", got)
	}
	if _, err := phone.g.Send(ctx, []byte("again")); !errors.Is(err, ErrRemoved) {
		t.Fatalf("removed phone sends: %v, want ErrRemoved", err)
	}
}

func TestRemoveDeviceRefused(t *testing.T) {
	n := newNet()
	rs := n.create(t, "laptop", "bob")
	laptop, bob := rs[0], rs[1]
	phone := n.addDevice(t, laptop, "phone")
	syncAll(t, laptop, bob, phone)
	tests := []struct {
		name   string
		by     *replica
		device crypto.PublicKey
		want   error
	}{
		{"itself", laptop, laptop.id.DeviceKey(), ErrConflict},
		{"another account's device", laptop, bob.id.DeviceKey(), ErrConflict},
		{"a device of another account's member", bob, phone.id.DeviceKey(), ErrConflict},
		{"unknown device", laptop, newIdentity(t).DeviceKey(), ErrNotMember},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.by.g.Epoch()
			if err := tc.by.g.RemoveDevice(ctxT(t), tc.device); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.by.g.Epoch() != before {
				t.Fatal("a refused removal changed the epoch")
			}
		})
	}
}

// TestForgedDeviceRemovalRefused: a member of another account writes a
// device-removed entry naming a device of alice's account (its own checks
// bypassed): every replica refuses it, and the device stays.
func TestForgedDeviceRemovalRefused(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	rs := n.create(t, "laptop", "bob")
	laptop, bob := rs[0], rs[1]
	phone := n.addDevice(t, laptop, "phone")
	syncAll(t, laptop, bob, phone)

	// Bob writes the entry raw, past his own group's checks.
	w := newRawWriter(t, n, "bob", MetaLogID(bob.g.ID()), bob.id.Device)
	w.follow(t, bob.g.Heads().Meta)
	var ne EpochID
	ne[0] = 7
	p := &MetaPayload{Type: MetaDeviceRemoved, Epoch: bob.g.Epoch(), NewEpoch: ne, Removed: []crypto.PublicKey{phone.id.DeviceKey()}}
	e := w.appendMeta(t, bob.g, p)
	err := laptop.g.Receive(ctx, "bob", Heads{Meta: []cid.Cid{e.CID()}})
	re := expectRejected(t, err, ErrBadAuthorization)
	if len(re.Rejections) != 1 {
		t.Fatalf("rejections %v", re.Rejections)
	}
	if !laptop.g.HasDevice(phone.id.DeviceKey()) {
		t.Fatal("a forged device-removed removed the phone")
	}
	if laptop.g.Epoch() == ne {
		t.Fatal("a forged device-removed started an epoch")
	}
	send(t, phone, "still here")
	pull(t, laptop, phone)
	if got := bodies(t, laptop.g); !slices.Contains(got, "still here") {
		t.Fatalf("laptop reads %q", got)
	}
}

// TestConcurrentDeviceRemovalsConverge: two devices of the account remove
// the same third device at once; every replica ends in one state (two
// new epochs, the device removed once for all) and reads on.
func TestConcurrentDeviceRemovalsConverge(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	rs := n.create(t, "laptop", "bob")
	laptop, bob := rs[0], rs[1]
	phone := n.addDevice(t, laptop, "phone")
	tablet := n.addDevice(t, laptop, "tablet")
	all := []*replica{laptop, bob, phone, tablet}
	syncAll(t, all...)
	if err := laptop.g.RemoveDevice(ctx, phone.id.DeviceKey()); err != nil {
		t.Fatal(err)
	}
	if err := tablet.g.RemoveDevice(ctx, phone.id.DeviceKey()); err != nil {
		t.Fatal(err)
	}
	live := []*replica{laptop, bob, tablet}
	syncAll(t, live...)
	epoch := laptop.g.Epoch()
	for _, r := range live {
		if r.g.Epoch() != epoch {
			t.Fatalf("%s is in epoch %s, laptop in %s", r.name, r.g.Epoch(), epoch)
		}
		if r.g.HasDevice(phone.id.DeviceKey()) {
			t.Fatalf("%s still has the phone", r.name)
		}
	}
	send(t, tablet, "tablet after")
	send(t, bob, "bob after")
	syncAll(t, live...)
	for _, r := range live {
		got := bodies(t, r.g)
		if !slices.Contains(got, "tablet after") || !slices.Contains(got, "bob after") {
			t.Fatalf("%s reads %q", r.name, got)
		}
	}
	_ = phone.g.Receive(ctx, "laptop", laptop.g.Heads())
	if got := bodies(t, phone.g); slices.Contains(got, "tablet after") || slices.Contains(got, "bob after") {
		t.Fatalf("removed phone reads %q", got)
	}
}

func TestDeviceRemovedPayloadRoundTrip(t *testing.T) {
	var ne EpochID
	ne[3] = 1
	p := &MetaPayload{Type: MetaDeviceRemoved, NewEpoch: ne, Removed: []crypto.PublicKey{{1}},
		Cutoffs: []Cutoff{{Device: crypto.PublicKey{1}, MetaTime: 3, MsgTime: 4, Limits: []EpochLimit{{Limit: 2}}}}}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	q, err := DecodeMetaPayload(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.Type != MetaDeviceRemoved || q.NewEpoch != ne || len(q.Removed) != 1 || len(q.Cutoffs) != 1 {
		t.Fatalf("decoded %+v", q)
	}
	p.Removed = nil
	b, _ = p.MarshalBinary()
	if _, err := DecodeMetaPayload(b); !errors.Is(err, ErrMalformedPayload) {
		t.Fatalf("device-removed naming no device: %v, want ErrMalformedPayload", err)
	}
}

// TestTwoDevicesRemoveTheSameMemberAtOnce: two devices of one account
// remove the same member concurrently; every replica ends in one state.
func TestTwoDevicesRemoveTheSameMemberAtOnce(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	rs := n.create(t, "laptop", "bob", "carol")
	laptop, bob, carol := rs[0], rs[1], rs[2]
	phone := n.addDevice(t, laptop, "phone")
	live := []*replica{laptop, bob, phone}
	syncAll(t, append(live, carol)...)
	if err := laptop.g.RemoveMember(ctx, carol.id.AccountKey()); err != nil {
		t.Fatal(err)
	}
	if err := phone.g.RemoveMember(ctx, carol.id.AccountKey()); err != nil {
		t.Fatal(err)
	}
	syncAll(t, live...)
	send(t, bob, "after")
	syncAll(t, live...)
	want := dumpState(laptop.g.state, false)
	for _, r := range live {
		if got := dumpState(r.g.state, false); got != want {
			t.Fatalf("%s's state differs from the laptop's:\n%s\nlaptop:\n%s", r.name, got, want)
		}
		if len(r.g.Members()) != 2 || !slices.Contains(bodies(t, r.g), "after") {
			t.Fatalf("%s: members %v, reads %q", r.name, r.g.Members(), bodies(t, r.g))
		}
	}
	_ = carol.g.Receive(ctx, "bob", bob.g.Heads())
	if slices.Contains(bodies(t, carol.g), "after") {
		t.Fatal("the removed member reads on")
	}
}
