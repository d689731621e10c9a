package log

import (
	"crypto/sha256"
	"errors"
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

// TestEntryIntern: with the table on, a block decoded twice gives one
// entry equal to a plain decode; other bytes under its CID still fail the
// hash check; a malformed block is refused each time; off, every decode
// is new.
func TestEntryIntern(t *testing.T) {
	defer SetEntryInternSize(0)
	defer SetCIDInternSize(0)
	a := craft(t, testKey(t, 1), "one", 1, nil, nil)
	b := craft(t, testKey(t, 1), "two", 2, []cid.Cid{a.CID()}, nil)
	for _, size := range []int{0, 1, 64} {
		SetEntryInternSize(size)
		SetCIDInternSize(size)
		for _, e := range []*Entry{a, b} {
			data := append([]byte(nil), e.Bytes()...)
			x, err := DecodeBlock(e.CID(), data)
			if err != nil {
				t.Fatal(err)
			}
			y, err := DecodeEntry(append([]byte(nil), e.Bytes()...))
			if err != nil {
				t.Fatal(err)
			}
			if (x == y) != (size > 0) {
				t.Fatalf("size %d: shared = %v", size, x == y)
			}
			for _, got := range []*Entry{x, y} {
				if !got.CID().Equals(e.CID()) || string(got.Payload) != string(e.Payload) || got.Time != e.Time ||
					len(got.Next) != len(e.Next) || string(got.Sig) != string(e.Sig) {
					t.Fatalf("size %d: decoded %+v, want %+v", size, got, e)
				}
			}
			// The caller's buffer changing does not change the shared entry.
			data[len(data)-1] ^= 1
			if string(x.Bytes()) != string(e.Bytes()) && size > 0 {
				t.Fatalf("size %d: the shared entry aliases the caller's buffer", size)
			}
			if _, err := DecodeBlock(e.CID(), data); !errors.Is(err, ErrHashMismatch) {
				t.Fatalf("size %d: tampered bytes: %v, want ErrHashMismatch", size, err)
			}
		}
	}
}
