package replication

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
)

// An inline block this process vouched for (announced by one of its
// replicas) passes on its hash alone; any other is checked in full.
func TestValidateSkipsWhatThisProcessVouchedFor(t *testing.T) {
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(nil)
	l, err := log.Open(ctx, "v", log.NewMemBlockStore(), log.NewMemKV(), log.NewKeySigner(priv),
		log.AllowWriters(priv.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e, err := l.Append(ctx, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	// The same entry with its signature's last byte flipped: bytes of
	// another CID, whose signature fails.
	bad := append([]byte(nil), e.Bytes()...)
	bad[len(bad)-1] ^= 1
	announce := func(b []byte) []byte {
		data, err := (&Announcement{Log: LogID{1}, Heads: []cid.Cid{blockCID(b)}, Inline: [][]byte{b}}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if err := ValidateAnnouncement(announce(bad)); !errors.Is(err, log.ErrBadSignature) {
		t.Fatalf("a badly signed inline entry: %v, want ErrBadSignature", err)
	}
	// Vouching for a CID skips the check of the bytes hashing to it (the
	// replicas vouch only for what was signed or verified here).
	vouched.add(blockCID(bad))
	if err := ValidateAnnouncement(announce(bad)); err != nil {
		t.Fatalf("a vouched-for block was checked again: %v", err)
	}
	if err := ValidateAnnouncement(announce(e.Bytes())); err != nil {
		t.Fatal(err)
	}
}

// The set of vouched-for CIDs is bounded: the oldest are forgotten.
func TestCIDSetBounded(t *testing.T) {
	s := newCIDSet(8)
	var cs []cid.Cid
	for i := range 20 {
		c := blockCID([]byte{byte(i)})
		cs = append(cs, c)
		s.add(c)
	}
	if !s.has(cs[19]) || !s.has(cs[16]) {
		t.Fatal("recent CIDs forgotten")
	}
	if s.has(cs[0]) {
		t.Fatal("the oldest CID kept past the bound")
	}
	if n := len(s.cur) + len(s.old); n > 8 {
		t.Fatalf("%d CIDs held, bound 8", n)
	}
}
