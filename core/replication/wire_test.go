package replication_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/replication"
)

func testCIDs(n int) []cid.Cid {
	out := make([]cid.Cid, n)
	for i := range out {
		out[i] = cidOf([]byte{byte(i), byte(i >> 8), 'x'})
	}
	slices.SortFunc(out, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	return out
}

func sortedBlocks(blocks ...[]byte) [][]byte {
	slices.SortFunc(blocks, func(a, b []byte) int { return bytes.Compare(cidOf(a).Bytes(), cidOf(b).Bytes()) })
	return blocks
}

func TestAnnouncementRoundTrip(t *testing.T) {
	id := replication.LogIDFor("topic", "messages")
	tests := []struct {
		name string
		a    replication.Announcement
	}{
		{"one head", replication.Announcement{Log: id, Heads: testCIDs(1)}},
		{"max heads", replication.Announcement{Log: id, Heads: testCIDs(replication.MaxHeads)}},
		{"inline", replication.Announcement{Log: id, Heads: testCIDs(2), Inline: sortedBlocks([]byte("entry one"), []byte("entry two"))}},
		{"digest", replication.Announcement{Digest: true, Log: id, Heads: testCIDs(3)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.a.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			got, err := replication.DecodeAnnouncement(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Digest != tc.a.Digest || got.Log != tc.a.Log ||
				!slices.EqualFunc(got.Heads, tc.a.Heads, cid.Cid.Equals) ||
				!slices.EqualFunc(got.Inline, tc.a.Inline, bytes.Equal) {
				t.Fatalf("round trip changed the announcement: %+v -> %+v", tc.a, got)
			}
		})
	}
}

func TestDecodeAnnouncementRejects(t *testing.T) {
	id := replication.LogIDFor("topic", "messages")
	valid, err := (&replication.Announcement{Log: id, Heads: testCIDs(2), Inline: sortedBlocks([]byte("a"), []byte("b"))}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	heads := testCIDs(2)
	x := cidOf([]byte("x"))
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	// msg is version 1, kind, the log id, then parts.
	msg := func(kind byte, parts ...[]byte) []byte {
		b := append([]byte{1, kind}, id[:]...)
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 2", mutate(func(b []byte) []byte { b[0] = 2; return b })},
		{"head-exchange kind", mutate(func(b []byte) []byte { b[1] = 3; return b })},
		{"unknown kind", mutate(func(b []byte) []byte { b[1] = 9; return b })},
		{"kind 1 (every head's cid sent, before kind 12)", msg(1, []byte{1}, heads[0].Bytes(), []byte{0})},
		{"truncated log id", valid[:10]},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"truncated heads", valid[:len(valid)-1]},
		{"zero heads", msg(12, []byte{0, 0})},
		{"zero heads, one inline entry not a head", msg(12, []byte{1, 1, 'x', 0, 0})},
		{"non-minimal varint", msg(12, []byte{0x81, 0x00})},
		{"too many heads", msg(12, []byte{0, replication.MaxHeads + 1})},
		{"too many heads with an inline one", msg(12, []byte{1, 1, 'x', 1, replication.MaxHeads})},
		{"unsorted heads", msg(12, []byte{0, 2}, heads[1].Bytes(), heads[0].Bytes())},
		{"duplicate heads", msg(12, []byte{0, 2}, heads[0].Bytes(), heads[0].Bytes())},
		{"raw codec head", msg(12, []byte{0, 1}, cid.NewCidV1(cid.Raw, heads[0].Hash()).Bytes())},
		{"an inline head sent as a cid", msg(12, []byte{1, 1, 'x', 0, 1}, x.Bytes())},
		{"the same head as a bit and a cid", msg(12, []byte{1, 1, 'x', 1, 1}, x.Bytes())},
		{"bitmask bit beyond the inline count", msg(12, []byte{1, 1, 'x', 0x03, 0})},
		{"bitmask missing", msg(12, []byte{1, 1, 'x'})},
		{"bitmask with no inline entries", msg(12, []byte{0, 0x01, 0})},
		{"digest with inline", msg(2, []byte{1}, heads[0].Bytes(), []byte{1, 1, 'x'})},
		{"empty inline entry", msg(12, []byte{1, 0})},
		{"oversized inline entry", msg(12, []byte{1, 0x81, 0x40})},
		{"too many inline entries", msg(12, []byte{replication.MaxInline + 1})},
		{"too large", make([]byte, replication.MaxAnnouncementSize+1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := replication.DecodeAnnouncement(tc.b); !errors.Is(err, replication.ErrMalformedMessage) {
				t.Fatalf("got %v, want ErrMalformedMessage", err)
			}
		})
	}
}

// TestInlineHeadCostsNoCID: a head that is an inline entry is one bit of
// the announcement, not its 36-byte CID; a head that is not inline is
// sent in full; both decode to the same heads.
func TestInlineHeadCostsNoCID(t *testing.T) {
	id := replication.LogIDFor("topic", "messages")
	entry := bytes.Repeat([]byte{'e'}, 516)
	other := testCIDs(1)[0]
	inlineHead := replication.Announcement{Log: id, Heads: []cid.Cid{cidOf(entry)}, Inline: [][]byte{entry}}
	b, err := inlineHead.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// version, kind, log id, inline count, size (2 B), entry, bitmask, head count 0
	if want := 2 + replication.LogIDSize + 1 + 2 + len(entry) + 1 + 1; len(b) != want {
		t.Fatalf("announcement of one inline head is %d B, want %d", len(b), want)
	}
	both := replication.Announcement{Log: id, Heads: sortedCIDs(cidOf(entry), other), Inline: [][]byte{entry}}
	b2, err := both.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b2) != len(b)+36 {
		t.Fatalf("a head not inline costs %d B, want its 36-B cid", len(b2)-len(b))
	}
	for _, tc := range []struct {
		raw  []byte
		want replication.Announcement
	}{{b, inlineHead}, {b2, both}} {
		got, err := replication.DecodeAnnouncement(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got.Heads, tc.want.Heads, cid.Cid.Equals) || len(got.Inline) != 1 {
			t.Fatalf("decoded heads %v, want %v", got.Heads, tc.want.Heads)
		}
	}
}

func sortedCIDs(cs ...cid.Cid) []cid.Cid {
	slices.SortFunc(cs, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	return cs
}

func TestMarshalRejectsBadAnnouncements(t *testing.T) {
	id := replication.LogIDFor("topic", "messages")
	tests := []struct {
		name string
		a    replication.Announcement
	}{
		{"no heads", replication.Announcement{Log: id}},
		{"unsorted heads", replication.Announcement{Log: id, Heads: []cid.Cid{testCIDs(2)[1], testCIDs(2)[0]}}},
		{"digest with inline", replication.Announcement{Digest: true, Log: id, Heads: testCIDs(1), Inline: [][]byte{[]byte("x")}}},
		{"oversized inline", replication.Announcement{Log: id, Heads: testCIDs(1), Inline: [][]byte{make([]byte, replication.MaxInlineEntry+1)}}},
		{"too many heads", replication.Announcement{Log: id, Heads: testCIDs(replication.MaxHeads + 1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.a.MarshalBinary(); !errors.Is(err, replication.ErrMalformedMessage) {
				t.Fatalf("got %v, want ErrMalformedMessage", err)
			}
		})
	}
}

func TestHeadsExchangeRoundTripAndRejects(t *testing.T) {
	a, b := replication.LogIDFor("t", "a"), replication.LogIDFor("t", "b")
	if bytes.Compare(a[:], b[:]) > 0 {
		a, b = b, a
	}
	x := &replication.HeadsExchange{Logs: []replication.LogHeads{{Log: a, Heads: testCIDs(2)}, {Log: b}}}
	raw, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := replication.DecodeHeadsExchange(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Response || len(got.Logs) != 2 || got.Logs[0].Log != a || len(got.Logs[0].Heads) != 2 || len(got.Logs[1].Heads) != 0 {
		t.Fatalf("round trip: %+v", got)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"announcement kind", append([]byte{1, 1}, raw[2:]...)},
		{"trailing", append(bytes.Clone(raw), 0)},
		{"truncated", raw[:len(raw)-1]},
		{"duplicate logs", append(append(append([]byte{1, 3, 2}, a[:]...), 0), append(a[:], 0)...)},
		{"unsorted logs", append(append(append([]byte{1, 3, 2}, b[:]...), 0), append(a[:], 0)...)},
		{"too many logs", []byte{1, 3, 0x81, 0x08}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := replication.DecodeHeadsExchange(tc.b); !errors.Is(err, replication.ErrMalformedMessage) {
				t.Fatalf("got %v, want ErrMalformedMessage", err)
			}
		})
	}
}

func TestTopicAndLogID(t *testing.T) {
	t1, err := replication.Topic(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	t2, _ := replication.Topic(testSecret)
	other, _ := replication.Topic([]byte("another secret of enough length"))
	if t1 != t2 || t1 == other || len(t1) != 22 {
		t.Fatalf("topics: %q %q %q", t1, t2, other)
	}
	if bytes.Contains([]byte(t1), []byte("0123456789abcdef")) {
		t.Fatal("topic reveals the secret")
	}
	if _, err := replication.Topic(make([]byte, replication.MinSecretSize-1)); !errors.Is(err, replication.ErrSecretTooShort) {
		t.Fatalf("short secret: %v", err)
	}
	if replication.LogIDFor(t1, "meta") == replication.LogIDFor(t1, "messages") ||
		replication.LogIDFor(t1, "meta") != replication.LogIDFor(t1, "meta") ||
		replication.LogIDFor(t1, "meta") == replication.LogIDFor(other, "meta") {
		t.Fatal("log ids do not separate channels and topics")
	}
}

// FuzzDecodeAnnouncement: decoding never panics, and whatever decodes
// re-encodes to the same bytes (the encoding is canonical).
func FuzzDecodeAnnouncement(f *testing.F) {
	id := replication.LogIDFor("topic", "messages")
	for _, a := range []replication.Announcement{
		{Log: id, Heads: testCIDs(1)},
		{Log: id, Heads: testCIDs(3), Inline: sortedBlocks([]byte("one"), []byte("two"))},
		{Digest: true, Log: id, Heads: testCIDs(2)},
		// kind 12: inline heads as bits, with a head that is not inline
		{Log: id, Heads: sortedCIDs(cidOf([]byte("one")), cidOf([]byte("three")), testCIDs(1)[0]),
			Inline: sortedBlocks([]byte("one"), []byte("two"), []byte("three"))},
	} {
		b, err := a.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 1})
	f.Add(append(append([]byte{1, 12}, id[:]...), 1, 1, 'x', 1, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := replication.DecodeAnnouncement(b)
		if err != nil {
			if !errors.Is(err, replication.ErrMalformedMessage) {
				t.Fatalf("error does not wrap ErrMalformedMessage: %v", err)
			}
			return
		}
		again, err := a.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded announcement does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical:\n in %x\nout %x", b, again)
		}
	})
}

// FuzzDecodeHeadsExchange: as FuzzDecodeAnnouncement, for the direct
// head-exchange messages.
func FuzzDecodeHeadsExchange(f *testing.F) {
	a, b := replication.LogIDFor("t", "a"), replication.LogIDFor("t", "b")
	if bytes.Compare(a[:], b[:]) > 0 {
		a, b = b, a
	}
	for _, x := range []replication.HeadsExchange{
		{},
		{Logs: []replication.LogHeads{{Log: a, Heads: testCIDs(2)}}},
		{Response: true, Logs: []replication.LogHeads{{Log: a}, {Log: b, Heads: testCIDs(1)}}},
	} {
		raw, err := x.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		x, err := replication.DecodeHeadsExchange(raw)
		if err != nil {
			if !errors.Is(err, replication.ErrMalformedMessage) {
				t.Fatalf("error does not wrap ErrMalformedMessage: %v", err)
			}
			return
		}
		again, err := x.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		if !bytes.Equal(again, raw) {
			t.Fatalf("not canonical:\n in %x\nout %x", raw, again)
		}
	})
}
