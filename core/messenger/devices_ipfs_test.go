package messenger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/sdk"
)

func connectIPFS(t *testing.T, a, b *ipfs.Network) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, sdk.PeerInfo{ID: b.PeerID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func msgBodies(t *testing.T, m *messenger.Messenger, ref string) []string {
	t.Helper()
	msgs, err := m.Messages(context.Background(), ref, messenger.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range msgs {
		out = append(out, string(x.Body))
	}
	return out
}

func linkDevice(t *testing.T, from, to *messenger.Messenger, name string) messenger.LinkResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	tok, _, err := from.LinkDevice(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	res, err := to.JoinAccount(ctx, tok, name, func(p messenger.LinkProgress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatalf("%s joins the account: %v", name, err)
	}
	if len(steps) == 0 || steps[0] != "keys" || steps[len(steps)-1] != "done" {
		t.Fatalf("progress steps %q", steps)
	}
	return res
}

// TestDevicesOverIPFS: a laptop, a contact (bob) and two more devices of
// the laptop's account, each on its own node over real libp2p on
// loopback. The phone and the tablet link to the account, hold the same
// groups and history as the laptop, send as the account, and the phone,
// once removed, can send nothing and reads nothing new.
func TestDevicesOverIPFS(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping devices over libp2p")
	}
	ctx := context.Background()
	var nets []*ipfs.Network
	var ms []*messenger.Messenger
	for i := range 4 {
		n := startIPFS(t, map[string]any{"dht_mode": "off"})
		nets = append(nets, n)
		ms = append(ms, ipfsMessenger(t, i, n))
	}
	laptop, bob, phone, tablet := ms[0], ms[1], ms[2], ms[3]
	connectIPFS(t, nets[0], nets[1])

	// Before linking: a group with bob, and bob as a contact.
	gi, err := laptop.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	ref := gi.ID.String()
	inv, err := laptop.Invite(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	jctx, cancel := context.WithTimeout(ctx, waitLimit)
	if _, err := bob.JoinGroup(jctx, inv.Token(), "g"); err != nil {
		t.Fatal(err)
	}
	cancel()
	ct, err := laptop.ContactToken("laptop")
	if err != nil {
		t.Fatal(err)
	}
	req, cgi, err := bob.AddContact(ctx, ct, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.AcceptContact(ctx, req); err != nil {
		t.Fatal(err)
	}
	cref := cgi.ID.String()
	waitFor(t, "two members on both sides", func() bool {
		a, _ := laptop.Members(ref)
		b, _ := bob.Members(ref)
		c, _ := bob.Members(cref)
		return len(a) == 2 && len(b) == 2 && len(c) == 2
	})
	for _, s := range []struct {
		m    *messenger.Messenger
		ref  string
		body string
	}{{laptop, ref, "laptop 1"}, {bob, ref, "bob 1"}, {bob, cref, "bob to laptop"}} {
		if _, err := s.m.Send(ctx, s.ref, []byte(s.body)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "laptop reads bob", func() bool {
		return len(msgBodies(t, laptop, ref)) == 2 && len(msgBodies(t, laptop, cref)) == 1
	})

	// Link the phone, then the tablet.
	res := linkDevice(t, laptop, phone, "phone")
	if !res.Account.Equal(laptop.Identity().AccountKey()) || phone.Identity().Account == nil {
		t.Fatalf("the phone is a device of account %s, want %s with the account key", res.Account.Fingerprint(), laptop.Identity().AccountKey().Fingerprint())
	}
	if res.Messages != 3 {
		t.Fatalf("history imported %d messages, want 3", res.Messages)
	}
	linkDevice(t, laptop, tablet, "tablet")
	for name, m := range map[string]*messenger.Messenger{"phone": phone, "tablet": tablet} {
		if got, want := groupIDs(m), groupIDs(laptop); !slices.Equal(got, want) {
			t.Fatalf("%s holds groups %v, laptop %v", name, got, want)
		}
		if got, want := msgBodies(t, m, ref), msgBodies(t, laptop, ref); !slices.Equal(got, want) {
			t.Fatalf("%s reads %q, laptop %q", name, got, want)
		}
		if got := msgBodies(t, m, cref); !slices.Equal(got, []string{"bob to laptop"}) {
			t.Fatalf("%s reads %q in the contact group", name, got)
		}
	}

	// Each device sends; every other node reads it as the account's. (A
	// sender shares its chain with the devices it knows of: wait until
	// both know all three.)
	for name, m := range map[string]*messenger.Messenger{"phone": phone, "tablet": tablet} {
		waitFor(t, name+" sees the three devices in g", func() bool {
			mb, err := m.Members(ref)
			if err != nil {
				return false
			}
			for _, x := range mb {
				if x.Account.Equal(laptop.Identity().AccountKey()) {
					return len(x.Devices) == 3
				}
			}
			return false
		})
	}
	for i, m := range []*messenger.Messenger{phone, tablet} {
		if _, err := m.Send(ctx, ref, fmt.Appendf(nil, "device %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := phone.Send(ctx, cref, []byte("phone to bob")); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*messenger.Messenger{"laptop": laptop, "bob": bob, "phone": phone, "tablet": tablet} {
		waitFor(t, name+" reads both devices", func() bool {
			got := msgBodies(t, m, ref)
			return slices.Contains(got, "device 0") && slices.Contains(got, "device 1")
		})
	}
	waitFor(t, "bob reads the phone in the contact group", func() bool {
		return slices.Contains(msgBodies(t, bob, cref), "phone to bob")
	})
	msgs, _ := bob.Messages(ctx, ref, messenger.ListOptions{})
	for _, x := range msgs {
		if string(x.Body) == "device 0" && !x.Account.Equal(laptop.Identity().AccountKey()) {
			t.Fatalf("bob reads the phone's message as account %s", x.Account.Fingerprint())
		}
	}
	waitFor(t, "laptop lists three devices", func() bool {
		ds, err := laptop.Devices(ctx)
		return err == nil && len(ds) == 3 && names(ds) == "laptop?,phone,tablet"
	})

	// Groups made at once on two devices appear on all three; one left on
	// one device is left on all.
	later, err := laptop.CreateGroup(ctx, "later")
	if err != nil {
		t.Fatal(err)
	}
	made, err := phone.CreateGroup(ctx, "phone-made")
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*messenger.Messenger{"laptop": laptop, "phone": phone, "tablet": tablet} {
		waitFor(t, name+" holds both new groups", func() bool {
			ids := groupIDs(m)
			return slices.Contains(ids, later.ID.String()) && slices.Contains(ids, made.ID.String())
		})
	}
	waitFor(t, "the laptop sees the three devices in the phone's group", func() bool {
		mb, err := laptop.Members(made.ID.String())
		return err == nil && len(mb) == 1 && len(mb[0].Devices) == 3
	})
	if _, err := laptop.Send(ctx, made.ID.String(), []byte("laptop in the phone's group")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tablet reads the laptop in the phone's group", func() bool {
		return slices.Contains(msgBodies(t, tablet, made.ID.String()), "laptop in the phone's group")
	})
	if err := tablet.Leave(ctx, later.ID.String()); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*messenger.Messenger{"laptop": laptop, "phone": phone} {
		waitFor(t, name+" marks the group left", func() bool {
			gi, err := m.Resolve(later.ID.String())
			return err == nil && gi.Left
		})
	}

	// Remove the phone: from g, the contact, the account group and
	// phone-made ("later" was left).
	d, n, err := laptop.RemoveDevice(ctx, "phone")
	if err != nil || n != 4 || !d.Device.Equal(phone.Identity().DeviceKey()) {
		t.Fatalf("remove the phone: %v in %d groups (%v), want 4", err, n, d.Device.Fingerprint())
	}
	waitFor(t, "the phone learns its removal", func() bool {
		ds, _ := phone.Devices(ctx)
		for _, d := range ds {
			if d.This {
				return d.Removed
			}
		}
		return false
	})
	waitFor(t, "the phone learns its removal from g", func() bool {
		mb, err := phone.Members(ref)
		if err != nil {
			return false
		}
		for _, x := range mb {
			if x.Account.Equal(laptop.Identity().AccountKey()) {
				return len(x.Devices) == 2
			}
		}
		return false
	})
	if _, err := phone.Send(ctx, ref, []byte("phone after removal")); !errors.Is(err, group.ErrRemoved) {
		t.Fatalf("removed phone sends: %v, want ErrRemoved", err)
	}
	// Bob sends once he knows of the removal (before, his message in the
	// old epoch is one the phone may read: concurrency, as for members).
	waitFor(t, "bob learns the removal", func() bool {
		mb, err := bob.Members(ref)
		if err != nil {
			return false
		}
		for _, x := range mb {
			if x.Account.Equal(laptop.Identity().AccountKey()) {
				return len(x.Devices) == 2
			}
		}
		return false
	})
	if _, err := laptop.Send(ctx, ref, []byte("after removal")); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, ref, []byte("bob after removal")); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*messenger.Messenger{"laptop": laptop, "bob": bob, "tablet": tablet} {
		waitFor(t, name+" reads after the removal", func() bool {
			got := msgBodies(t, m, ref)
			return slices.Contains(got, "after removal") && slices.Contains(got, "bob after removal")
		})
	}
	// The phone has had the entries as long as the tablet did; it reads
	// neither.
	waitFor(t, "the phone holds the entries", func() bool {
		a, _ := phone.SyncStatus(ctx, ref)
		b, _ := tablet.SyncStatus(ctx, ref)
		return len(a) == 1 && len(b) == 1 && a[0].Logs[1].Entries >= b[0].Logs[1].Entries
	})
	if got := msgBodies(t, phone, ref); slices.Contains(got, "after removal") || slices.Contains(got, "bob after removal") {
		t.Fatalf("the removed phone reads %q", got)
	}
	// A removed device gets no history either.
	if _, err := phone.FetchHistory(ctx, nets[0].PeerID(), gi.ID); !errors.Is(err, messenger.ErrLinkRefused) {
		t.Fatalf("removed phone fetches history: %v, want ErrLinkRefused", err)
	}
}

func groupIDs(m *messenger.Messenger) []string {
	var out []string
	for _, g := range m.Groups() {
		out = append(out, g.ID.String())
	}
	slices.Sort(out)
	return out
}

func names(ds []messenger.DeviceInfo) string {
	var out []string
	for _, d := range ds {
		n := d.Name
		if n == "" {
			n = "laptop?"
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return fmt.Sprint(out[0], ",", out[1], ",", out[2])
}

// TestLinkTokenRefusals: bad link tokens are refused with a clear error
// and change nothing on either side.
func TestLinkTokenRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping devices over libp2p")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var nets []*ipfs.Network
	var ms []*messenger.Messenger
	for i := range 3 {
		n := startIPFS(t, map[string]any{"dht_mode": "off"})
		nets = append(nets, n)
		ms = append(ms, ipfsMessenger(t, i, n))
	}
	laptop, fresh, busy := ms[0], ms[1], ms[2]
	if _, err := busy.CreateGroup(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	tok := func() string {
		s, _, err := laptop.LinkDevice(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	used := tok()
	if _, err := ms[1].JoinAccount(ctx, used, "first", nil); err != nil {
		t.Fatal(err)
	}
	fresh = ipfsMessenger(t, 3, startIPFS(t, map[string]any{"dht_mode": "off"}))
	before := fresh.Identity().AccountKey()

	edit := func(s string, f func(*group.LinkToken)) string {
		lt, err := group.ParseLinkToken(s)
		if err != nil {
			t.Fatal(err)
		}
		f(lt)
		return lt.Token()
	}
	valid := tok()
	flipped := []byte(valid)
	if flipped[30] == 'a' {
		flipped[30] = 'b'
	} else {
		flipped[30] = 'a'
	}
	tests := []struct {
		name  string
		m     *messenger.Messenger
		token string
		want  error
		text  string
	}{
		{"tampered", fresh, string(flipped), group.ErrTokenChecksum, "changed"},
		{"not a link token", fresh, mustInvite(t, busy), group.ErrTokenType, "invitation"},
		{"expired", fresh, edit(valid, func(lt *group.LinkToken) { lt.Expires = time.Now().Add(-time.Minute) }), group.ErrTokenExpired, "expired"},
		{"replayed", fresh, used, messenger.ErrLinkRefused, "already used"},
		{"foreign secret", fresh, edit(valid, func(lt *group.LinkToken) { lt.Secret = crypto.RandomKey() }), messenger.ErrLinkRefused, "no such link token"},
		{"node not fresh", busy, tok(), messenger.ErrNotFresh, "fresh node"},
		{"another account", fresh, edit(tok(), func(lt *group.LinkToken) { lt.Account = busy.Identity().AccountKey() }), messenger.ErrLinkRefused, "answered with account"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.JoinAccount(ctx, tc.token, "x", nil)
			if !errors.Is(err, tc.want) || !containsFold(err.Error(), tc.text) {
				t.Fatalf("got %v, want %v saying %q", err, tc.want, tc.text)
			}
			if len(fresh.Groups()) != 0 || !fresh.Identity().AccountKey().Equal(before) {
				t.Fatal("a refused token changed the node")
			}
		})
	}
	// A device of another account asks the laptop for history: refused.
	connectIPFS(t, nets[2], nets[0])
	mine, err := busy.Resolve("mine")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := busy.FetchHistory(ctx, nets[0].PeerID(), mine.ID); !errors.Is(err, messenger.ErrLinkRefused) || !containsFold(err.Error(), "not certified by this account") {
		t.Fatalf("history for a device of another account: %v", err)
	}
	// The valid token was not used up by the forged ones.
	if _, err := fresh.JoinAccount(ctx, valid, "second", nil); err != nil {
		t.Fatalf("the valid token after the refusals: %v", err)
	}
}

func mustInvite(t *testing.T, m *messenger.Messenger) string {
	t.Helper()
	inv, err := m.Invite(context.Background(), "mine")
	if err != nil {
		t.Fatal(err)
	}
	return inv.Token()
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
