package group

import (
	"bytes"
	"testing"
)

func FuzzDecodeMetaPayload(f *testing.F) {
	f.Add([]byte{1, byte(MetaInvitationCreated)})
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

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte{1})
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
