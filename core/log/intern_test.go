package log

import (
	"crypto/sha256"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func testCID(i int) cid.Cid {
	sum := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
	m, _ := mh.Encode(sum[:], mh.SHA2_256)
	return cid.NewCidV1(cid.DagCBOR, m)
}

// TestCIDIntern: with the table on, a link decoded twice and a CID
// interned twice give equal CIDs (the same one); the table stays within
// its size; off, castLink is cid.Cast.
func TestCIDIntern(t *testing.T) {
	defer SetCIDInternSize(0)
	for _, size := range []int{0, 8, 1024} {
		SetCIDInternSize(size)
		for i := range 100 {
			c := testCID(i)
			raw := c.Bytes()
			a, err := castLink(raw)
			if err != nil {
				t.Fatal(err)
			}
			b := internCID(testCID(i))
			if !a.Equals(c) || !b.Equals(c) {
				t.Fatalf("size %d: interned %s, %s, want %s", size, a, b, c)
			}
		}
		cidIntern.mu.Lock()
		held := len(cidIntern.cur) + len(cidIntern.old)
		cidIntern.mu.Unlock()
		if held > size {
			t.Fatalf("size %d: table holds %d", size, held)
		}
	}
	if _, err := castLink([]byte{1, 2, 3}); err == nil {
		t.Fatal("castLink accepted 3 bytes")
	}
}
