package log

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"
)

// TestVerifiedSignaturesRememberedOnlyWhenGood: a prepared join remembers
// the entries whose signature verified (a second join of the same entries,
// before either commits, does not verify them again) and never a forged
// one, which a later join rejects again.
func TestVerifiedSignaturesRememberedOnlyWhenGood(t *testing.T) {
	s := newAttack(t)
	forged := craft(t, testKey(t, 9), "forged", 4, []cid.Cid{s.chain[2].CID()}, nil)
	forged.Writer = testKey(t, 1).Public().(ed25519.PublicKey)
	reencode(forged)
	s.m.add(t, forged)
	ctx := context.Background()
	for round := range 2 {
		p, err := s.v.log.PrepareJoin(ctx, []cid.Cid{forged.CID()}, "mallory", FetchFrom(s.m.blocks))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range s.chain {
			if !s.v.log.verified.has(e.CID().KeyString()) {
				t.Fatalf("round %d: good entry %q not remembered as verified", round, e.Payload)
			}
		}
		if s.v.log.verified.has(forged.CID().KeyString()) {
			t.Fatalf("round %d: forged entry remembered as verified", round)
		}
		for _, e := range p.Entries() {
			if e.CID().Equals(forged.CID()) {
				t.Fatalf("round %d: forged entry prepared as good", round)
			}
		}
	}
	res, err := s.join(t, forged.CID())
	expectRejected(t, s, res, err, s.chain, map[cid.Cid]error{forged.CID(): ErrBadSignature})
}

func TestVerifiedSignaturesBounded(t *testing.T) {
	var v verifiedSigs
	for i := range 3 * verifiedCap {
		v.add(fmt.Sprint(i))
		v.add(fmt.Sprint(i)) // twice: counted once
	}
	if len(v.set) != verifiedCap || len(v.ring) != verifiedCap {
		t.Fatalf("%d remembered (%d in the ring), want %d", len(v.set), len(v.ring), verifiedCap)
	}
	if v.has("0") || !v.has(fmt.Sprint(3*verifiedCap-1)) || !v.has(fmt.Sprint(2*verifiedCap)) {
		t.Fatal("not the most recent ones kept")
	}
}
