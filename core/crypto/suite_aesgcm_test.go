package crypto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// Known-answer vectors of AESGCMSuite in testdata/aesgcm_vectors.json,
// recomputed independently (Python "cryptography", OpenSSL's AES-GCM and
// HKDF) by testdata/crosscheck_aesgcm.py. Regenerate with
//
//	SKEIN_WRITE_VECTORS=1 go test -run TestAESGCMVectors ./core/crypto
type aesgcmVectors struct {
	SealKey       string `json:"seal_key"`
	SealSalt      string `json:"seal_salt"`
	SealPlain     string `json:"seal_plaintext"`
	SealAD        string `json:"seal_ad"`
	SealBox       string `json:"seal_box"`
	RecipientPriv string `json:"sealto_recipient_private"`
	EphemeralPriv string `json:"sealto_ephemeral_private"`
	SealToPlain   string `json:"sealto_plaintext"`
	SealToAD      string `json:"sealto_ad"`
	SealToBox     string `json:"sealto_box"`
}

const aesgcmVectorsFile = "testdata/aesgcm_vectors.json"

func computeAESGCMVectors(tb testing.TB) aesgcmVectors {
	tb.Helper()
	s := AESGCMSuite{}
	var v aesgcmVectors
	key := fuzzSymmetricKey()
	var salt [NonceSize]byte
	copy(salt[:], fill(7, NonceSize))
	plain, ad := fill('m', 200), []byte("skein/v1/test-ad")
	box, err := s.sealWithSalt(key, &salt, plain, ad)
	if err != nil {
		tb.Fatal(err)
	}
	v.SealKey, v.SealSalt = hex.EncodeToString(key[:]), hex.EncodeToString(salt[:])
	v.SealPlain, v.SealAD, v.SealBox = hex.EncodeToString(plain), hex.EncodeToString(ad), hex.EncodeToString(box)

	rec := fuzzX25519Key(tb)
	eph, err := NewX25519PrivateKey(fill(3, 32))
	if err != nil {
		tb.Fatal(err)
	}
	share := []byte("a chain key share")
	sbox, err := s.SealToEphemeral(eph, rec.Public(), share, ad)
	if err != nil {
		tb.Fatal(err)
	}
	v.RecipientPriv, v.EphemeralPriv = hex.EncodeToString(rec.Bytes()), hex.EncodeToString(eph.Bytes())
	v.SealToPlain, v.SealToAD, v.SealToBox = hex.EncodeToString(share), hex.EncodeToString(ad), hex.EncodeToString(sbox)
	return v
}

func TestAESGCMVectors(t *testing.T) {
	now := computeAESGCMVectors(t)
	if os.Getenv("SKEIN_WRITE_VECTORS") == "1" {
		out, _ := json.MarshalIndent(now, "", "  ")
		if err := os.WriteFile(aesgcmVectorsFile, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(aesgcmVectorsFile)
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var v aesgcmVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	if v != now {
		t.Fatalf("AES-GCM suite vectors changed:\nfile: %+v\nnow:  %+v", v, now)
	}
	s := AESGCMSuite{}
	key := (*[KeySize]byte)(mustHex(t, v.SealKey))
	if got, err := s.Open(key, mustHex(t, v.SealBox), mustHex(t, v.SealAD)); err != nil || !bytes.Equal(got, mustHex(t, v.SealPlain)) {
		t.Fatalf("open seal vector: %v", err)
	}
	rec, _ := NewX25519PrivateKey(mustHex(t, v.RecipientPriv))
	if got, err := s.OpenFrom(rec, mustHex(t, v.SealToBox), mustHex(t, v.SealToAD)); err != nil || !bytes.Equal(got, mustHex(t, v.SealToPlain)) {
		t.Fatalf("open sealed-to vector: %v", err)
	}
	// The same inputs under the default suite give other bytes.
	if _, err := DefaultSuite().Open(key, mustHex(t, v.SealBox), mustHex(t, v.SealAD)); err == nil {
		t.Fatal("the default suite opens an AES-GCM suite box")
	}
}

func BenchmarkSuites(b *testing.B) {
	key := RandomKey()
	plain := make([]byte, 200)
	for _, s := range []Suite{DefaultSuite(), AESGCMSuite{}} {
		b.Run(s.Name()+"/seal-200B", func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			for b.Loop() {
				_, _ = s.Seal(&key, plain, nil)
			}
		})
	}
}
