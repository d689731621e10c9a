package crypto

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Known-answer vectors in testdata/vectors.json pin the wire formats of
// docs/protocol.md. testdata/crosscheck.py recomputes them with an unrelated
// implementation (Python "cryptography"). Regenerate with
//
//	SKEIN_WRITE_VECTORS=1 go test -run TestVectors ./core/crypto
type vectors struct {
	AccountSeed      string            `json:"account_seed"`
	AccountPublic    string            `json:"account_public"`
	AccountFP        string            `json:"account_fingerprint"`
	DeviceSeed       string            `json:"device_seed"`
	DeviceX25519Priv string            `json:"device_x25519_private"`
	SignDomain       string            `json:"sign_domain"`
	SignMessage      string            `json:"sign_message"`
	Signature        string            `json:"signature"`
	CertCreated      int64             `json:"cert_created"`
	Certificate      string            `json:"certificate"`
	EphemeralPriv    string            `json:"sealto_ephemeral_private"`
	SealToPlain      string            `json:"sealto_plaintext"`
	SealToAD         string            `json:"sealto_ad"`
	SealToBox        string            `json:"sealto_box"`
	SealKey          string            `json:"seal_key"`
	SealPlain        string            `json:"seal_plaintext"`
	SealAD           string            `json:"seal_ad"`
	SealBox          string            `json:"seal_box"`
	SealOnceKey      string            `json:"seal_once_key"`
	SealOncePlain    string            `json:"seal_once_plaintext"`
	SealOnceAD       string            `json:"seal_once_ad"`
	SealOnceBox      string            `json:"seal_once_box"`
	RatchetChainKey  string            `json:"ratchet_chain_key"`
	RatchetMsgKeys   []string          `json:"ratchet_message_keys"`
	RatchetNextChain string            `json:"ratchet_chain_key_after"`
	DeriveSecret     string            `json:"derive_secret"`
	DeriveSalt       string            `json:"derive_salt"`
	DeriveInfo       string            `json:"derive_info"`
	DeriveOut        string            `json:"derive_out"`
	KeystorePass     string            `json:"keystore_passphrase"`
	KeystoreMeta     string            `json:"keystore_meta"`
	KeystoreEntries  map[string]string `json:"keystore_entries"` // name -> file contents
	KeystoreSecrets  map[string]string `json:"keystore_secrets"` // name -> secret
}

const vectorsFile = "testdata/vectors.json"

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// deterministicVectors computes every vector that does not depend on
// randomness.
func deterministicVectors(tb testing.TB) vectors {
	tb.Helper()
	var v vectors
	account, _ := NewSigningKeyFromSeed(fill(1, 32))
	devSign, _ := NewSigningKeyFromSeed(fill(2, 32))
	devX := fuzzX25519Key(tb)
	v.AccountSeed = hex.EncodeToString(fill(1, 32))
	v.AccountPublic = account.Public().String()
	v.AccountFP = account.Public().Fingerprint()
	v.DeviceSeed = hex.EncodeToString(fill(2, 32))
	v.DeviceX25519Priv = hex.EncodeToString(devX.Bytes())
	v.SignDomain = "skein/v1/test"
	v.SignMessage = hex.EncodeToString([]byte("hello"))
	sig, _ := account.Sign(v.SignDomain, []byte("hello"))
	v.Signature = hex.EncodeToString(sig)
	v.CertCreated = 1_790_000_000
	cert, _ := IssueDeviceCertificate(account, NewDeviceKey(devSign, devX).Public(), time.Unix(v.CertCreated, 0))
	cb, _ := cert.MarshalBinary()
	v.Certificate = hex.EncodeToString(cb)

	eph, _ := ecdh.X25519().NewPrivateKey(fill(3, 32))
	rpub, _ := ecdh.X25519().NewPublicKey(devX.pub[:])
	v.EphemeralPriv = hex.EncodeToString(fill(3, 32))
	v.SealToPlain = hex.EncodeToString([]byte("a chain key share"))
	v.SealToAD = hex.EncodeToString([]byte("skein/v1/test-ad"))
	box, err := sealToWith(eph, rpub, devX.pub, []byte("a chain key share"), []byte("skein/v1/test-ad"))
	if err != nil {
		tb.Fatal(err)
	}
	v.SealToBox = hex.EncodeToString(box)

	var ck [KeySize]byte
	v.RatchetChainKey = hex.EncodeToString(ck[:])
	s := NewSendingChain(ck, 0)
	for range 3 {
		_, mk := s.Next()
		v.RatchetMsgKeys = append(v.RatchetMsgKeys, hex.EncodeToString(mk[:]))
	}
	_, after := s.Share()
	v.RatchetNextChain = hex.EncodeToString(after[:])

	v.DeriveSecret = hex.EncodeToString(fill(4, 32))
	v.DeriveSalt = hex.EncodeToString([]byte("salt"))
	v.DeriveInfo = "skein/v1/test-derive"
	dk, _ := DeriveKey(fill(4, 32), []byte("salt"), v.DeriveInfo)
	v.DeriveOut = hex.EncodeToString(dk[:])

	once := (*[KeySize]byte)(fill(5, KeySize))
	v.SealOnceKey = hex.EncodeToString(once[:])
	v.SealOncePlain = hex.EncodeToString(fill('m', 200))
	v.SealOnceAD = hex.EncodeToString([]byte("skein/v1/test-ad"))
	ob, _ := SealOnce(once, fill('m', 200), []byte("skein/v1/test-ad"))
	v.SealOnceBox = hex.EncodeToString(ob)
	return v
}

func TestVectors(t *testing.T) {
	det := deterministicVectors(t)
	if os.Getenv("SKEIN_WRITE_VECTORS") == "1" {
		v := det
		key := fuzzSymmetricKey()
		v.SealKey = hex.EncodeToString(key[:])
		v.SealPlain = hex.EncodeToString(fill('m', 200))
		v.SealAD = hex.EncodeToString([]byte("skein/v1/test-ad"))
		sb, _ := Seal(key, fill('m', 200), []byte("skein/v1/test-ad"))
		v.SealBox = hex.EncodeToString(sb)

		dir := filepath.Join(t.TempDir(), "ks")
		v.KeystorePass = "correct horse"
		ks := openTestKeystore(t, dir, WithPassphrase([]byte(v.KeystorePass)))
		v.KeystoreEntries = map[string]string{}
		v.KeystoreSecrets = map[string]string{"device/key": hex.EncodeToString(fill(9, 65)), "empty": ""}
		for n, s := range v.KeystoreSecrets {
			if err := ks.Put(n, mustHex(t, s)); err != nil {
				t.Fatal(err)
			}
			fb, _ := os.ReadFile(ks.path(n))
			v.KeystoreEntries[n] = hex.EncodeToString(fb)
		}
		meta, _ := os.ReadFile(filepath.Join(dir, KeystoreMetaFile))
		v.KeystoreMeta = hex.EncodeToString(meta)
		out, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(vectorsFile, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	// Everything deterministic must be reproduced bit for bit.
	cmp := v
	cmp.SealKey, cmp.SealPlain, cmp.SealAD, cmp.SealBox = "", "", "", ""
	cmp.KeystorePass, cmp.KeystoreMeta, cmp.KeystoreEntries, cmp.KeystoreSecrets = "", "", nil, nil
	a, _ := json.Marshal(cmp)
	b, _ := json.Marshal(det)
	if !bytes.Equal(a, b) {
		t.Fatalf("deterministic vectors changed:\nfile: %s\nnow:  %s", a, b)
	}
	devX := fuzzX25519Key(t)
	if got, err := OpenFrom(devX, mustHex(t, v.SealToBox), mustHex(t, v.SealToAD)); err != nil ||
		!bytes.Equal(got, mustHex(t, v.SealToPlain)) {
		t.Fatalf("open sealed-to vector: %v", err)
	}
	key := (*[KeySize]byte)(mustHex(t, v.SealKey))
	if got, err := Open(key, mustHex(t, v.SealBox), mustHex(t, v.SealAD)); err != nil ||
		!bytes.Equal(got, mustHex(t, v.SealPlain)) {
		t.Fatalf("open seal vector: %v", err)
	}
	// The keystore vector opens with the passphrase after a copy to disk.
	dir := filepath.Join(t.TempDir(), "ks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeystoreMetaFile), mustHex(t, v.KeystoreMeta), 0o600); err != nil {
		t.Fatal(err)
	}
	for n, e := range v.KeystoreEntries {
		p := filepath.Join(dir, hex.EncodeToString([]byte(n))+secretSuffix)
		if err := os.WriteFile(p, mustHex(t, e), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ks := openTestKeystore(t, dir, WithPassphrase([]byte(v.KeystorePass)))
	for n, s := range v.KeystoreSecrets {
		got, err := ks.Get(n)
		if err != nil || !bytes.Equal(got, mustHex(t, s)) {
			t.Fatalf("keystore vector %s: %v", n, err)
		}
	}
}
