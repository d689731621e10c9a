package group

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

func testKeystore(t testing.TB) *crypto.Keystore {
	t.Helper()
	ks, err := crypto.OpenKeystore(t.TempDir() + "/ks")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

func TestSaveKeysAndOpen(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	stA, stB := n.storage(), n.storage()
	a, b := n.pair(t, stA, stB)
	alice, bob, ga, gb := a.id, b.id, a.g, b.g
	send(t, a, "one")
	send(t, b, "two")
	syncAll(t, a, b)
	ksA, ksB := testKeystore(t), testKeystore(t)
	if err := ga.SaveKeys(ksA); err != nil {
		t.Fatal(err)
	}
	if err := gb.SaveKeys(ksB); err != nil {
		t.Fatal(err)
	}
	// Alice sends while bob is closed; bob's saved ratchet must still open it.
	send(t, a, "three")
	before := bodies(t, gb)
	gb.Close()

	gb2, err := Open(ctx, bob, ksB, ga.ID(), stB)
	if err != nil {
		t.Fatal(err)
	}
	defer gb2.Close()
	b = &replica{"bob", bob, gb2}
	if got := bodies(t, gb2); len(got) != 2 || !slices.Equal(got, before) {
		t.Fatalf("reopened bob has %q, before closing %q", got, before)
	}
	pull(t, b, a)
	send(t, b, "four")
	pull(t, a, b)
	want := append(slices.Clone(before), "three", "four")
	for _, r := range []*replica{a, b} {
		if got := bodies(t, r.g); !slices.Equal(got, want) {
			t.Fatalf("%s has %q, want %q", r.name, got, want)
		}
	}

	// Alice reopens from keys saved before "three": her chain is advanced
	// past the indices she already used, so bob does not see a replay.
	ga.Close()
	ga2, err := Open(ctx, alice, ksA, ga.ID(), stA)
	if err != nil {
		t.Fatal(err)
	}
	defer ga2.Close()
	a = &replica{"alice", alice, ga2}
	send(t, a, "five")
	pull(t, b, a)
	if got := bodies(t, gb2); !slices.Contains(got, "five") {
		t.Fatalf("bob cannot read alice's message after her restart: %q", got)
	}

	t.Run("keys of another group", func(t *testing.T) {
		other, _ := crypto.GenerateSigningKey()
		if _, err := Open(ctx, alice, ksA, other.Public(), stA); !errors.Is(err, crypto.ErrNotFound) {
			t.Fatalf("got %v, want crypto.ErrNotFound", err)
		}
	})
}

// failingKV fails, while fail is set, every batch that writes a local
// copy of a message.
type failingKV struct {
	*log.MemKV
	fail bool
}

func (k *failingKV) Batch(ctx context.Context, ops []log.KVOp, sync bool) error {
	for _, op := range ops {
		if k.fail && bytes.Contains(op.Key, []byte("/local/m/")) {
			return errors.New("disk full")
		}
	}
	return k.MemKV.Batch(ctx, ops, sync)
}

// A sent message's entry and this device's readable copy of it are stored
// together or not at all: a failed write leaves no entry behind whose copy
// is missing (after a restart the sending chain is advanced past the
// indices of the copies; an entry without one would have its index used
// again, and receivers would drop the second message as a replay).
func TestSendStoresEntryAndLocalCopyTogether(t *testing.T) {
	ctx := ctxT(t)
	kv := &failingKV{MemKV: log.NewMemKV()}
	g, err := Create(ctx, newIdentity(t), Storage{Blocks: log.NewMemBlockStore(), KV: kv})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	before := g.msgs.Len()
	kv.fail = true
	if _, err := g.Send(ctx, []byte("lost to a full disk")); err == nil {
		t.Fatal("send succeeded on a failing store")
	}
	if g.msgs.Len() != before {
		t.Fatalf("the message log holds %d entries after a failed send, want %d", g.msgs.Len(), before)
	}
	kv.fail = false
	m, err := g.Send(ctx, []byte("after the disk recovered"))
	if err != nil {
		t.Fatal(err)
	}
	local, err := kv.Get(ctx, append(g.localPrefix(), m.CID.Bytes()...))
	if err != nil || len(local) == 0 {
		t.Fatalf("no local copy of a sent message: %v", err)
	}
}

// Keys are never saved ahead of the readable copies of the messages they
// opened. While the store fails to write a received message's copy, the
// message is delivered from memory and SaveKeys saves nothing; a crash
// then reopens the group with the chains from before the message, which
// open it again. Before, the advanced chains were saved, and after a
// restart the message's key was gone: it was lost.
func TestReceivedCopyBeforeKeys(t *testing.T) {
	tests := []struct {
		name  string
		crash bool // reopen from the keystore while the store still fails
	}{
		{"crash while the store fails", true},
		{"the store recovers", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet()
			ctx := ctxT(t)
			kvB := &failingKV{MemKV: log.NewMemKV()}
			stB := Storage{Blocks: n.blocks, KV: kvB}
			a, b := n.pair(t, n.storage(), stB)
			bob, ga, gb := b.id, a.g, b.g
			ks := testKeystore(t)
			if err := gb.SaveKeys(ks); err != nil {
				t.Fatal(err)
			}

			send(t, a, "while bob's disk is full")
			kvB.fail = true
			pull(t, b, a)
			if got := bodies(t, gb); !slices.Contains(got, "while bob's disk is full") {
				t.Fatalf("bob lists %q: the message was not delivered from memory", got)
			}
			if err := gb.SaveKeys(ks); !errors.Is(err, ErrUnsavedMessages) {
				t.Fatalf("SaveKeys with an unstored copy: err = %v, want ErrUnsavedMessages", err)
			}
			if !tt.crash {
				kvB.fail = false
				if err := gb.SaveKeys(ks); err != nil {
					t.Fatalf("SaveKeys after the store recovered: %v", err)
				}
			}
			gb.Close()
			kvB.fail = false
			gb2, err := Open(ctx, bob, ks, ga.ID(), stB)
			if err != nil {
				t.Fatal(err)
			}
			defer gb2.Close()
			if got := bodies(t, gb2); !slices.Contains(got, "while bob's disk is full") {
				t.Fatalf("after the restart bob lists %q: the message was lost", got)
			}
		})
	}
}

// A device whose keys were saved before it first sent, and that crashed
// after sending (its chain-keys entry is in the log, its chain is not in
// the keystore), rekeys before it sends again: its members hold the lost
// chain, and a new one under the same epoch would never open for them.
func TestLostSendingChainRekeys(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	stA, stB := n.storage(), n.storage()
	a, b := n.pair(t, stA, stB)
	ks := testKeystore(t)
	if err := a.g.SaveKeys(ks); err != nil { // no sending chain yet
		t.Fatal(err)
	}
	send(t, a, "before the crash")
	syncAll(t, a, b)
	epoch := a.g.Epoch()
	a.g.Close() // the crash: the chain that sent the message was never saved

	ga, err := Open(ctx, a.id, ks, b.g.ID(), stA)
	if err != nil {
		t.Fatal(err)
	}
	defer ga.Close()
	a = &replica{"alice", a.id, ga}
	sent := send(t, a, "after the crash")
	if sent.Epoch == epoch || ga.Epoch() == epoch {
		t.Fatalf("alice sent in epoch %s again, with a chain nobody holds", epoch)
	}
	pull(t, b, a)
	if got := bodies(t, b.g); !slices.Equal(got, []string{"before the crash", "after the crash"}) {
		t.Fatalf("bob has %q", got)
	}
}
