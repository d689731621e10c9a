package group

import (
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
	alice, bob := newIdentity(t), newIdentity(t)
	kvA, kvB := log.NewMemKV(), log.NewMemKV()
	stA, stB := Storage{Blocks: n.blocks, KV: kvA}, Storage{Blocks: n.blocks, KV: kvB}
	ga, err := Create(ctx, alice, stA)
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := ga.Invite(ctx)
	gb, err := Join(ctx, bob, inv, stB, "alice", ga.Heads())
	if err != nil {
		t.Fatal(err)
	}
	a, b := &replica{"alice", alice, ga}, &replica{"bob", bob, gb}
	syncAll(t, a, b)
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
