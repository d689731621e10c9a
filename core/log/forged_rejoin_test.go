package log

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/ipfs/go-cid"
)

// TestForgedEntryRejectedEveryJoin: the process's cache of verified
// signatures keeps only those that verified, so a forged entry is refused
// by every prepared join, not only the first, while the good entries it
// links to are prepared each time.
func TestForgedEntryRejectedEveryJoin(t *testing.T) {
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
		good := 0
		for _, e := range p.Entries() {
			if e.CID().Equals(forged.CID()) {
				t.Fatalf("round %d: forged entry prepared as good", round)
			}
			good++
		}
		if good != len(s.chain) {
			t.Fatalf("round %d: %d good entries prepared, want %d", round, good, len(s.chain))
		}
	}
	res, err := s.join(t, forged.CID())
	expectRejected(t, s, res, err, s.chain, map[cid.Cid]error{forged.CID(): ErrBadSignature})
}
