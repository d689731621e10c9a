package messenger

import (
	"bytes"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
)

func testGrant(t testing.TB) []byte {
	t.Helper()
	acct, _ := crypto.GenerateSigningKey()
	ck, _ := crypto.GenerateX25519Key()
	b := append(acct.Seed(), ck.Bytes()...)
	b = appendUvarint(b, 1)
	b = appendBytes(b, []byte("g"))
	return appendBytes(b, []byte("skein1-token"))
}

func TestDecodeGrant(t *testing.T) {
	good := testGrant(t)
	if _, _, gs, err := decodeGrant(good); err != nil || len(gs) != 1 || gs[0].name != "g" {
		t.Fatalf("good grant: %v %v", gs, err)
	}
	for name, b := range map[string][]byte{
		"short":     good[:40],
		"trailing":  append(bytes.Clone(good), 0),
		"truncated": good[:len(good)-3],
		"no groups": appendUvarint(bytes.Clone(good[:64]), 0),
		"huge name": appendBytes(appendUvarint(bytes.Clone(good[:64]), 1), make([]byte, MaxGroupName+1)),
	} {
		if _, _, _, err := decodeGrant(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzDecodeGrant(f *testing.F) {
	f.Add(testGrant(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, gs, err := decodeGrant(b)
		if err == nil && len(gs) == 0 {
			t.Fatal("a grant without groups decoded")
		}
	})
}

func testHistoryRequest(t testing.TB) []byte {
	t.Helper()
	id, err := group.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	m := &Messenger{id: id}
	b, err := m.historyRequest("peer", crypto.PublicKey{1}, 7)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseHistoryRequest(t *testing.T) {
	b := testHistoryRequest(t)
	p, err := parseHistoryRequest(b)
	if err != nil || p.after != 7 || p.group != (crypto.PublicKey{1}) || time.Since(time.UnixMilli(int64(p.at))) > time.Minute {
		t.Fatalf("parse: %+v %v", p, err)
	}
	if err := p.cert.Device.Verify(domainHistoryReq, append([]byte("peer\x00"), p.signed...), p.sig); err != nil {
		t.Fatalf("signature: %v", err)
	}
	for name, bad := range map[string][]byte{
		"empty":    nil,
		"version":  append([]byte{9}, b[1:]...),
		"trailing": append(append(bytes.Clone(b[:len(b)-crypto.SignatureSize]), 0), b[len(b)-crypto.SignatureSize:]...),
	} {
		if _, err := parseHistoryRequest(bad); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func FuzzParseHistoryRequest(f *testing.F) {
	f.Add(testHistoryRequest(f))
	f.Add([]byte{historyVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := parseHistoryRequest(b); err == nil && (p.cert == nil || len(p.sig) != crypto.SignatureSize) {
			t.Fatal("parsed without a certificate or signature")
		}
	})
}
