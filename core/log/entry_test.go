package log

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	mh "github.com/multiformats/go-multihash"
)

// sampleEntries returns entries covering the field shapes: root, one next,
// several next and refs, empty and large payloads, large times.
func sampleEntries(tb testing.TB) []*Entry {
	tb.Helper()
	k := testKey(tb, 1)
	root := craft(tb, k, "", 1, nil, nil)
	a := craft(tb, k, "a", 2, []cid.Cid{root.CID()}, nil)
	b := craft(tb, testKey(tb, 2), "b", 2, []cid.Cid{root.CID()}, nil)
	merge := craft(tb, k, string(make([]byte, 70000)), 1<<40, []cid.Cid{a.CID(), b.CID()}, func(e *Entry) {
		e.Refs = []cid.Cid{root.CID()}
	})
	long := craft(tb, k, "x", 1<<63, []cid.Cid{merge.CID()}, func(e *Entry) { e.ID = string(bytes.Repeat([]byte{0xff}, MaxIDLength)) })
	return []*Entry{root, a, b, merge, long}
}

// TestEncodingMatchesGoIPLDPrime proves that the hand-written encoder emits
// canonical dag-cbor: go-ipld-prime's decoder reads the bytes and its
// encoder reproduces them exactly, links decode as the same CIDs, and the
// CID is what go-cid computes for the bytes.
func TestEncodingMatchesGoIPLDPrime(t *testing.T) {
	for _, e := range sampleEntries(t) {
		t.Run(e.CID().String(), func(t *testing.T) {
			nb := basicnode.Prototype.Any.NewBuilder()
			if err := dagcbor.Decode(nb, bytes.NewReader(e.Bytes())); err != nil {
				t.Fatalf("go-ipld-prime cannot decode: %v", err)
			}
			n := nb.Build()
			var buf bytes.Buffer
			if err := dagcbor.Encode(n, &buf); err != nil {
				t.Fatalf("go-ipld-prime cannot encode: %v", err)
			}
			if !bytes.Equal(buf.Bytes(), e.Bytes()) {
				t.Fatalf("go-ipld-prime re-encodes differently:\n ours %x\n its  %x", e.Bytes(), buf.Bytes())
			}
			next, err := n.LookupByString("n")
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range e.Next {
				ln, err := next.LookupByIndex(int64(i))
				if err != nil {
					t.Fatal(err)
				}
				l, err := ln.AsLink()
				if err != nil {
					t.Fatalf("next[%d] is not a link: %v", i, err)
				}
				if got := l.(cidlink.Link).Cid; !got.Equals(want) {
					t.Fatalf("next[%d] = %s, want %s", i, got, want)
				}
			}
			want, err := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: mh.SHA2_256, MhLength: -1}.Sum(e.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if !want.Equals(e.CID()) {
				t.Fatalf("cid %s, go-cid says %s", e.CID(), want)
			}
		})
	}
}

// TestDecodeReadsGoIPLDPrimeEncoding builds an entry with go-ipld-prime
// from the specification alone and checks that DecodeEntry reads it and
// that the signature (made over the spec's signing bytes) verifies.
func TestDecodeReadsGoIPLDPrimeEncoding(t *testing.T) {
	k := testKey(t, 3)
	root := craft(t, k, "root", 1, nil, nil)
	build := func(withSig bool, sig []byte) []byte {
		n, err := qp.BuildMap(basicnode.Prototype.Any, -1, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "v", qp.Int(1))
			qp.MapEntry(ma, "id", qp.Bytes([]byte(testLogID)))
			qp.MapEntry(ma, "p", qp.Bytes([]byte("hello")))
			qp.MapEntry(ma, "t", qp.Int(7))
			qp.MapEntry(ma, "n", qp.List(-1, func(la datamodel.ListAssembler) {
				qp.ListEntry(la, qp.Link(cidlink.Link{Cid: root.CID()}))
			}))
			qp.MapEntry(ma, "r", qp.List(0, func(datamodel.ListAssembler) {}))
			qp.MapEntry(ma, "w", qp.Bytes([]byte(k.Public().(ed25519.PublicKey))))
			if withSig {
				qp.MapEntry(ma, "s", qp.Bytes(sig))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := dagcbor.Encode(n, &buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	unsigned := build(false, nil)
	sig, err := NewKeySigner(k).Sign(append([]byte(SignatureDomain), unsigned...))
	if err != nil {
		t.Fatal(err)
	}
	e, err := DecodeEntry(build(true, sig))
	if err != nil {
		t.Fatalf("decode go-ipld-prime encoding: %v", err)
	}
	if err := e.VerifySignature(); err != nil {
		t.Fatalf("signature over spec signing bytes: %v", err)
	}
	if string(e.Payload) != "hello" || e.Time != 7 || len(e.Next) != 1 || !e.Next[0].Equals(root.CID()) || e.ID != testLogID {
		t.Fatalf("decoded fields wrong: %+v", e)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	for _, e := range sampleEntries(t) {
		d, err := DecodeBlock(e.CID(), e.Bytes())
		if err != nil {
			t.Fatalf("decode %s: %v", e.CID(), err)
		}
		if err := d.VerifySignature(); err != nil {
			t.Fatalf("verify %s: %v", e.CID(), err)
		}
		if got := appendEncoding(nil, d, true); !bytes.Equal(got, e.Bytes()) {
			t.Fatalf("re-encoding differs for %s", e.CID())
		}
	}
}

// mutateBytes returns a copy of b with f applied.
func mutateBytes(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }

func TestDecodeStrict(t *testing.T) {
	k := testKey(t, 1)
	root := craft(t, k, "r", 1, nil, nil)
	good := craft(t, k, "payload", 2, []cid.Cid{root.CID()}, nil)
	raw := good.Bytes()
	// Offsets in good: a8 | 61 6e 81 d8 2a 58 25 00 <36> | 61 70 47 "payload" | ...
	iPayloadHead := 1 + 2 + 1 + 41 + 2
	encodeWith := func(mut func(*Entry)) []byte {
		e := *good
		e.Next, e.Refs = append([]cid.Cid(nil), good.Next...), append([]cid.Cid(nil), good.Refs...)
		mut(&e)
		return appendEncoding(nil, &e, true)
	}
	other := craft(t, k, "o", 1, nil, nil)
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not a map", []byte{0x80}},
		{"map of 9", append([]byte{0xa9}, raw[1:]...)},
		{"map of 7", append([]byte{0xa7}, raw[1:]...)},
		{"indefinite map", append([]byte{0xbf}, raw[1:]...)},
		{"trailing byte", append(bytes.Clone(raw), 0x00)},
		{"truncated", raw[:len(raw)-1]},
		{"renamed field", mutateBytes(raw, func(b []byte) []byte { b[2] = 'x'; return b })},
		{"payload as text", mutateBytes(raw, func(b []byte) []byte { b[iPayloadHead] = 0x67; return b })},
		{"payload non-canonical length", func() []byte {
			b := append([]byte{}, raw[:iPayloadHead]...)
			b = append(b, 0x58, 7) // 7 fits in the head byte: non-canonical
			return append(b, raw[iPayloadHead+1:]...)
		}()},
		{"payload indefinite length", mutateBytes(raw, func(b []byte) []byte { b[iPayloadHead] = 0x5f; return b })},
		{"next not a link", mutateBytes(raw, func(b []byte) []byte { b[4] = 0xd9; return b })},
		{"cid v0 prefix", mutateBytes(raw, func(b []byte) []byte { b[9] = 0x00; return b })},
		{"cid raw codec", mutateBytes(raw, func(b []byte) []byte { b[10] = 0x55; return b })},
		{"version 2", encodeWithVersion(good, 2)},
		{"writer too short", encodeWith(func(e *Entry) { e.Writer = e.Writer[:31] })},
		{"signature too short", encodeWith(func(e *Entry) { e.Sig = e.Sig[:63] })},
		{"empty id", encodeWith(func(e *Entry) { e.ID = "" })},
		{"id too long", encodeWith(func(e *Entry) { e.ID = string(make([]byte, MaxIDLength+1)) })},
		{"duplicate next", encodeWith(func(e *Entry) { e.Next = []cid.Cid{root.CID(), root.CID()} })},
		{"unsorted next", encodeWith(func(e *Entry) {
			e.Next = []cid.Cid{root.CID(), other.CID()}
			if compareCID(root.CID(), other.CID()) < 0 {
				e.Next = []cid.Cid{other.CID(), root.CID()}
			}
		})},
		{"link in next and refs", encodeWith(func(e *Entry) { e.Refs = []cid.Cid{root.CID()} })},
		{"huge array length", mutateBytes(raw, func(b []byte) []byte {
			return append(append([]byte{0xa8, 0x61, 'n', 0x9b}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), b[4:]...)
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEntry(tt.data)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeEntry error = %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		if _, err := DecodeEntry(raw); err != nil {
			t.Fatalf("good entry: %v", err)
		}
	})
}

// encodeWithVersion encodes e with a different version number.
func encodeWithVersion(e *Entry, v uint64) []byte {
	b := appendEncoding(nil, e, true)
	i := bytes.Index(b, []byte{0x61, 'v', 0x01})
	b[i+2] = byte(v)
	return b
}

func TestDecodeBlockChecksCID(t *testing.T) {
	k := testKey(t, 1)
	e := craft(t, k, "x", 1, nil, nil)
	other := craft(t, k, "y", 1, nil, nil)
	rawCID := cid.NewCidV1(cid.Raw, e.CID().Hash())
	tests := []struct {
		name string
		c    cid.Cid
		data []byte
		want error
	}{
		{"matching", e.CID(), e.Bytes(), nil},
		{"other block's bytes", e.CID(), other.Bytes(), ErrHashMismatch},
		{"one byte flipped", e.CID(), mutateBytes(e.Bytes(), func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrHashMismatch},
		{"raw codec cid", rawCID, e.Bytes(), ErrMalformed},
		{"undefined cid", cid.Undef, e.Bytes(), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeBlock(tt.c, tt.data)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("DecodeBlock error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifySignature(t *testing.T) {
	k := testKey(t, 1)
	tests := []struct {
		name   string
		mutate func(e *Entry)
		ok     bool
	}{
		{"untouched", func(*Entry) {}, true},
		{"payload changed", func(e *Entry) { e.Payload = []byte("y") }, false},
		{"time changed", func(e *Entry) { e.Time++ }, false},
		{"writer swapped", func(e *Entry) { e.Writer = testKey(t, 2).Public().(ed25519.PublicKey) }, false},
		{"signature flipped", func(e *Entry) { e.Sig = bytes.Clone(e.Sig); e.Sig[0] ^= 1 }, false},
		{"id changed", func(e *Entry) { e.ID = "other" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := craft(t, k, "x", 1, nil, nil)
			tt.mutate(e)
			d, err := DecodeEntry(reencode(e).Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if err := d.VerifySignature(); (err == nil) != tt.ok {
				t.Fatalf("VerifySignature = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestOverheadFormula checks the size formula in docs/protocol.md ("Sizes").
func TestOverheadFormula(t *testing.T) {
	for _, e := range sampleEntries(t) {
		want := 121 + len(e.ID) + headLen(uint64(len(e.Payload))) + headLen(e.Time) +
			headLen(uint64(len(e.ID))) + 41*(len(e.Next)+len(e.Refs))
		if got := len(e.Bytes()) - len(e.Payload); got != want {
			t.Errorf("entry %s: overhead %d, formula %d", e.CID(), got, want)
		}
	}
}
