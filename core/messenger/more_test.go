package messenger_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/plugins/store/memstore"
	"github.com/skein-p2p/skein/sdk"
)

// plainNetwork hides the optional capabilities (peer events, direct
// requests): replication must work over pubsub and blocks alone.
type plainNetwork struct{ sdk.Network }

func TestPubsubOnlyNetwork(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	defer sn.Close()
	var ms []*messenger.Messenger
	for _, name := range []string{"a", "b"} {
		nd, err := sn.AddNode(name)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := crypto.OpenKeystore(filepath.Join(t.TempDir(), "keys"))
		if err != nil {
			t.Fatal(err)
		}
		defer ks.Close()
		m, err := messenger.New(ctx, messenger.Config{Keystore: ks, Store: memstore.New(), Network: plainNetwork{nd}})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ms = append(ms, m)
	}
	sn.ConnectAll()
	gi, err := ms[0].CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ms[0].Invite(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	jctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	if _, err := ms[1].JoinGroup(jctx, inv.Token(), "g"); err != nil {
		t.Fatal(err)
	}
	oneEach(t, ms, gi.ID.String())
}

func TestRemovedMemberReadsNothingNew(t *testing.T) {
	ctx := context.Background()
	_, nodes, ref := threeMembers(t)
	c := nodes[2]
	if _, err := nodes[0].m.RemoveMember(ctx, ref, c.m.Identity().AccountKey().Fingerprint()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b sees two members", func() bool {
		ms, err := nodes[1].m.Members(ref)
		return err == nil && len(ms) == 2
	})
	sent, err := nodes[1].m.Send(ctx, ref, []byte("after removal"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a has the message", func() bool { return slices.Contains(bodies(t, nodes[0], ref), "after removal") })
	// c holds the entry (it replicates the ciphertext) but reads nothing.
	waitFor(t, "c holds the entry", func() bool {
		st, err := c.m.SyncStatus(ctx, ref)
		return err == nil && len(st) == 1 && slices.Contains(st[0].Logs[1].LocalHeads, sent.CID)
	})
	if slices.Contains(bodies(t, c, ref), "after removal") {
		t.Fatal("a removed member read a message sent after its removal")
	}
}

func TestImportsInitKeys(t *testing.T) {
	ctx := context.Background()
	ks, err := crypto.OpenKeystore(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	// What `skein init` writes.
	acct, err := crypto.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := crypto.GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := crypto.IssueDeviceCertificate(acct, dev.Public(), timeNow())
	if err != nil {
		t.Fatal(err)
	}
	db, _ := dev.MarshalBinary()
	cb, _ := cert.MarshalBinary()
	for name, v := range map[string][]byte{messenger.InitAccountSeed: acct.Seed(), messenger.InitDeviceKey: db, messenger.InitDeviceCert: cb} {
		if err := ks.Put(name, v); err != nil {
			t.Fatal(err)
		}
	}
	sn := simnet.New()
	defer sn.Close()
	nd, _ := sn.AddNode("a")
	m, err := messenger.New(ctx, messenger.Config{Keystore: ks, Store: memstore.New(), Network: nd})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.Identity().AccountKey().Equal(acct.Public()) || !m.Identity().DeviceKey().Equal(dev.Public().Signing) {
		t.Fatal("the messenger did not take the account and device of skein init")
	}
	if _, err := m.ContactToken("me"); err != nil {
		t.Fatalf("contact token after import: %v", err)
	}
}

func timeNow() time.Time { return time.Now() }

// oneEach waits until every messenger sees all of them as members (a
// member reads what others send after it is in their membership), has
// each send one message, and waits until every one holds them all.
func oneEach(t *testing.T, ms []*messenger.Messenger, ref string) {
	t.Helper()
	ctx := context.Background()
	for i, m := range ms {
		waitFor(t, fmt.Sprintf("messenger %d sees %d members", i, len(ms)), func() bool {
			mb, err := m.Members(ref)
			return err == nil && len(mb) == len(ms)
		})
	}
	for i, m := range ms {
		if _, err := m.Send(ctx, ref, fmt.Appendf(nil, "from %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range ms {
		waitFor(t, fmt.Sprintf("messenger %d has all %d messages", i, len(ms)), func() bool {
			msgs, err := m.Messages(ctx, ref, messenger.ListOptions{})
			return err == nil && len(msgs) == len(ms)
		})
	}
}
