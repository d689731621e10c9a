package messenger

import (
	"errors"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
)

func testCID(tb testing.TB, s string) cid.Cid {
	tb.Helper()
	h, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		tb.Fatal(err)
	}
	return cid.NewCidV1(cid.DagCBOR, h)
}

func TestHeadsRoundTrip(t *testing.T) {
	id := crypto.PublicKey{1, 2, 3}
	tests := []struct {
		name  string
		heads group.Heads
	}{
		{"empty", group.Heads{}},
		{"meta only", group.Heads{Meta: []cid.Cid{testCID(t, "a")}}},
		{"both", group.Heads{Meta: []cid.Cid{testCID(t, "a"), testCID(t, "b")}, Messages: []cid.Cid{testCID(t, "c")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gid, h, err := DecodeHeads(encodeHeads(id, tc.heads))
			if err != nil {
				t.Fatal(err)
			}
			if gid != id || !sameHeads(h, tc.heads) {
				t.Fatalf("got %v %v, want %v %v", gid, h, id, tc.heads)
			}
		})
	}
}

func TestDecodeHeadsRejects(t *testing.T) {
	id := crypto.PublicKey{9}
	good := encodeHeads(id, group.Heads{Meta: []cid.Cid{testCID(t, "a")}})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", good[:10]},
		{"version", append([]byte{7}, good[1:]...)},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"truncated cid", good[:len(good)-1]},
		{"too many heads", append(append([]byte{1}, id[:]...), 0xff, 0xff, 0x03)},
		{"bad cid", append(append([]byte{1}, id[:]...), 1, 3, 1, 2, 3, 0)},
		{"want is not heads", encodeWant(id)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := DecodeHeads(tc.b); !errors.Is(err, ErrMalformedHeads) {
				t.Fatalf("err = %v, want ErrMalformedHeads", err)
			}
		})
	}
}

func TestTopicHidesGroupKey(t *testing.T) {
	id := crypto.PublicKey{0xab, 0xcd, 0xef, 0x12}
	topic := TopicFor(id)
	if topic == TopicFor(crypto.PublicKey{1}) {
		t.Fatal("two groups share a topic")
	}
	for _, part := range []string{id.String(), id.String()[:8], id.Fingerprint()} {
		if len(part) > 0 && contains(topic, part) {
			t.Fatalf("topic %q shows the group key (%q)", topic, part)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func FuzzDecodeHeads(f *testing.F) {
	id := crypto.PublicKey{5}
	f.Add(encodeHeads(id, group.Heads{}))
	f.Add(encodeHeads(id, group.Heads{Meta: []cid.Cid{testCID(f, "x")}, Messages: []cid.Cid{testCID(f, "y")}}))
	f.Add(encodeWant(id))
	f.Fuzz(func(t *testing.T, b []byte) {
		gid, h, err := DecodeHeads(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes.
		if again := encodeHeads(gid, h); string(again) != string(b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
	})
}
