package log

import (
	"encoding/hex"
	"strings"
	"testing"
)

// TestProtocolVector checks the test vector printed in docs/protocol.md
// ("The Merkle log", "Test vector").
func TestProtocolVector(t *testing.T) {
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const (
		pub     = "3f07ddec98f77249108b514a3dd4a095a9987df8437a7c82e6e80bbba0aee11f"
		signing = `736b65696e2f6c6f672f656e7472792f763100a7616e806170426869617280617401
617601617758203f07ddec98f77249108b514a3dd4a095a9987df8437a7c82e6e80b
bba0aee11f62696448746573742d6c6f67`
		block = `a8616e80617042686961728061735840e7949d7f8a9a7e3b7d01f3a51f6b0d8c8e9e
59ed5c1df72910dad0a66c20f250ab95273e22ae5e79c670d51b631dec81808e651f
9622b6870c8061cba0e7d10d617401617601617758203f07ddec98f77249108b514a
3dd4a095a9987df8437a7c82e6e80bbba0aee11f62696448746573742d6c6f67`
		cidText = "bafyreih7sxswshr7uvxcp4ycpi62al67obhnjfw7ycfbhhipbu73dm4qfm"
	)
	seed := make([]byte, 32)
	seed[0], seed[31] = 0x01, 0x5a
	k := testKey(t, 1)
	if hex.EncodeToString(k.Seed()) != hex.EncodeToString(seed) {
		t.Fatalf("test key seed %x, want %x", k.Seed(), seed)
	}
	e := craft(t, k, "hi", 1, nil, nil)
	if got := hex.EncodeToString(e.Writer); got != pub {
		t.Fatalf("public key %s, want %s", got, pub)
	}
	if got := signingBytes(e); hex.EncodeToString(got) != hex.EncodeToString(unhex(signing)) {
		t.Fatalf("signing bytes %x", got)
	}
	if hex.EncodeToString(e.Bytes()) != hex.EncodeToString(unhex(block)) {
		t.Fatalf("block %x", e.Bytes())
	}
	if e.CID().String() != cidText {
		t.Fatalf("cid %s, want %s", e.CID(), cidText)
	}
	d, err := DecodeBlock(e.CID(), unhex(block))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.VerifySignature(); err != nil {
		t.Fatal(err)
	}
}
