package group

import (
	"bytes"
	"errors"
	"testing"

	"github.com/skein-p2p/skein/core/crypto"
)

func FuzzDecodeMetaPayload(f *testing.F) {
	f.Add([]byte{byte(MetaInvitationCreated)})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeMetaPayload(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes (one encoding per value).
		again, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded payload does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

// FuzzOpenMetaPayload opens what a log entry carries under fixed keys (the
// seeds are sealed with them): whatever opens decodes and re-encodes to
// its plaintext; nothing else opens.
func FuzzOpenMetaPayload(f *testing.F) {
	f.Add([]byte{payloadVersion})
	keys, group, writer := fuzzSealing(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := openMeta(keys, group, writer, b)
		if err != nil {
			if !errors.Is(err, ErrMalformedPayload) {
				t.Fatalf("error %v does not wrap ErrMalformedPayload", err)
			}
			return
		}
		if _, err := p.MarshalBinary(); err != nil {
			t.Fatalf("opened payload does not encode: %v", err)
		}
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte{envelopeVersion})
	f.Add(append([]byte{envelopeVersion}, make([]byte, sealedEpochSize+2)...))
	f.Add(append([]byte{envelopeVersion3}, make([]byte, sealedEpochSize+2)...)) // still read
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		if again, _ := e.MarshalBinary(); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzParseInvitation(f *testing.F) {
	f.Add("skein1-")
	f.Add((&Invitation{Kind: KindMulti, Suite: crypto.AESGCMSuiteName}).Token())
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseInvitation(s)
		if err != nil {
			return
		}
		again, err := ParseInvitation(inv.Token())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		a, _ := inv.MarshalBinary()
		b, _ := again.MarshalBinary()
		if !bytes.Equal(a, b) {
			t.Fatal("round trip differs")
		}
	})
}

func FuzzParseContactToken(f *testing.F) {
	f.Add("skein1-")
	f.Fuzz(func(t *testing.T, s string) {
		ct, err := ParseContactToken(s)
		if err != nil {
			return
		}
		if err := ct.Verify(); err != nil {
			t.Fatalf("parsed token does not verify: %v", err)
		}
	})
}

func FuzzParseContactRequest(f *testing.F) {
	f.Add("skein1-")
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseContactRequest(s)
		if err != nil {
			return
		}
		if err := q.Verify(); err != nil {
			t.Fatalf("parsed request does not verify: %v", err)
		}
	})
}

func FuzzParseReplicationNodeToken(f *testing.F) {
	f.Add("skein1-")
	f.Add((&ReplicationNodeToken{Peer: "12D3KooWpeer", Addrs: []string{"/ip4/10.0.0.1/tcp/4001"}, Secret: [32]byte{1}}).Token())
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseReplicationNodeToken(s)
		if err != nil {
			return
		}
		again, err := ParseReplicationNodeToken(tok.Token())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if again.Peer != tok.Peer || again.Secret != tok.Secret || len(again.Addrs) != len(tok.Addrs) {
			t.Fatal("round trip changed the token")
		}
	})
}
