package group

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
)

func testLinkToken(t testing.TB) *LinkToken {
	t.Helper()
	id := newIdentity(t)
	return &LinkToken{Account: id.AccountKey(), Peer: "12D3KooWExample", Addrs: []string{"/ip4/127.0.0.1/tcp/4001"},
		Expires: time.Unix(2_000_000_000, 0), Secret: crypto.RandomKey()}
}

func TestLinkTokenRoundTrip(t *testing.T) {
	lt := testLinkToken(t)
	text := lt.Token()
	got, err := ParseLinkToken(text)
	if err != nil {
		t.Fatal(err)
	}
	if got.Account != lt.Account || got.Peer != lt.Peer || !slices.Equal(got.Addrs, lt.Addrs) || !got.Expires.Equal(lt.Expires) || got.Secret != lt.Secret {
		t.Fatalf("round trip: %v, want %v", got, lt)
	}
	if got.ID() != lt.ID() {
		t.Fatal("ids differ")
	}
	if s := lt.String(); strings.Contains(s, string(lt.Secret[:4])) {
		t.Fatal("String shows the secret")
	}
}

func TestLinkTokenBad(t *testing.T) {
	lt := testLinkToken(t)
	text := lt.Token()
	flip := []byte(text)
	if flip[20] == 'a' {
		flip[20] = 'b'
	} else {
		flip[20] = 'a'
	}
	inv, _ := newNet().create(t, "a")[0].g.Invite(ctxT(t))
	tests := []struct {
		name string
		text string
		want error
	}{
		{"tampered", string(flip), ErrTokenChecksum},
		{"truncated", text[:40], ErrTokenTruncated},
		{"empty", "", ErrTokenPrefix},
		{"an invitation", inv.Token(), ErrTokenType},
		{"not base32", "skein1-!!!", ErrTokenEncoding},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseLinkToken(tc.text); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := lt.CheckExpiry(lt.Expires.Add(time.Second)); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := lt.CheckExpiry(lt.Expires.Add(-time.Second)); err != nil {
		t.Fatalf("valid: %v", err)
	}
}

func FuzzParseLinkToken(f *testing.F) {
	f.Add(testLinkToken(f).Token())
	f.Add("skein1-")
	f.Fuzz(func(t *testing.T, s string) {
		lt, err := ParseLinkToken(s)
		if err != nil {
			return
		}
		again, err := ParseLinkToken(lt.Token())
		if err != nil || again.Secret != lt.Secret {
			t.Fatalf("a parsed token does not round-trip: %v", err)
		}
	})
}

func FuzzDecodeHistory(f *testing.F) {
	c, _ := cid.Decode("bafyreierxeriwqc3z5motkguy276r3yuv7y25eq4jbzzmw3ngzchikpf7e")
	f.Add(EncodeHistory([]*Message{{CID: c, Body: []byte("hi"), SentAt: time.UnixMilli(5)}}))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := DecodeHistory(b)
		if err != nil {
			return
		}
		if _, err := DecodeHistory(EncodeHistory(ms)); err != nil {
			t.Fatalf("re-encoded history does not decode: %v", err)
		}
	})
}

// TestImportHistory: a device that joins late reads only what is sent
// after; the history another device of its account hands it makes the
// rest readable, checked against the entries of its own log.
func TestImportHistory(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	rs := n.create(t, "laptop", "bob")
	laptop, bob := rs[0], rs[1]
	send(t, laptop, "old 1")
	send(t, bob, "old 2")
	syncAll(t, laptop, bob)
	phone := n.addDevice(t, laptop, "phone")
	syncAll(t, laptop, bob, phone)
	if got := bodies(t, phone.g); len(got) != 0 {
		t.Fatalf("the new device reads %q before the history", got)
	}
	var hist []*Message
	for m, err := range laptop.g.Messages(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		hist = append(hist, m)
	}
	batch, err := OpenHistory(phone.id, laptop.g.ID(), mustSealHistory(t, laptop.g.ID(), phone.id.Cert, EncodeHistory(hist)))
	if err != nil {
		t.Fatal(err)
	}
	// A message naming the wrong sender is refused.
	forged := *batch[0]
	forged.Sender = bob.id.DeviceKey()
	if forged.Sender == batch[0].Sender {
		forged.Sender = laptop.id.DeviceKey()
	}
	if _, _, err := phone.g.ImportHistory(ctx, []*Message{&forged}); !errors.Is(err, ErrTampered) {
		t.Fatalf("forged sender: %v, want ErrTampered", err)
	}
	unknown := *batch[0]
	unknown.CID, _ = cid.Decode("bafyreierxeriwqc3z5motkguy276r3yuv7y25eq4jbzzmw3ngzchikpf7e")
	imp, missing, err := phone.g.ImportHistory(ctx, append(batch, &unknown))
	if err != nil || imp != 2 || missing != 1 {
		t.Fatalf("import: %d imported, %d missing, %v; want 2, 1", imp, missing, err)
	}
	if got := bodies(t, phone.g); !slices.Equal(got, bodies(t, laptop.g)) {
		t.Fatalf("phone reads %q, laptop %q", got, bodies(t, laptop.g))
	}
	// Sealed to the phone, a batch does not open on another device.
	if _, err := OpenHistory(bob.id, laptop.g.ID(), mustSealHistory(t, laptop.g.ID(), phone.id.Cert, EncodeHistory(hist))); !errors.Is(err, ErrTampered) {
		t.Fatalf("another device opens the batch: %v", err)
	}
}

func mustSealHistory(t testing.TB, g crypto.PublicKey, to *crypto.DeviceCertificate, pt []byte) []byte {
	t.Helper()
	b, err := SealHistory(g, to, pt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
