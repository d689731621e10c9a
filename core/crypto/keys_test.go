package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func mustSigningKey(tb testing.TB) *SigningKey {
	tb.Helper()
	k, err := GenerateSigningKey()
	if err != nil {
		tb.Fatalf("generate signing key: %v", err)
	}
	return k
}

func mustDeviceKey(tb testing.TB) *DeviceKey {
	tb.Helper()
	d, err := GenerateDeviceKey()
	if err != nil {
		tb.Fatalf("generate device key: %v", err)
	}
	return d
}

func TestSignVerify(t *testing.T) {
	key := mustSigningKey(t)
	other := mustSigningKey(t)
	msg := []byte("an entry")
	sig, err := key.Sign("skein/v1/test", msg)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	flipped := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	tests := []struct {
		name    string
		pub     PublicKey
		domain  string
		msg     []byte
		sig     []byte
		wantErr error
	}{
		{"valid", key.Public(), "skein/v1/test", msg, sig, nil},
		{"other domain", key.Public(), "skein/v1/other", msg, sig, ErrInvalidSignature},
		{"domain prefix ambiguity", key.Public(), "skein/v1/tes", append([]byte("t"), msg...), sig, ErrInvalidSignature},
		{"tampered message", key.Public(), "skein/v1/test", flipped(msg, 0), sig, ErrInvalidSignature},
		{"tampered signature", key.Public(), "skein/v1/test", msg, flipped(sig, 10), ErrInvalidSignature},
		{"short signature", key.Public(), "skein/v1/test", msg, sig[:63], ErrInvalidSignature},
		{"nil signature", key.Public(), "skein/v1/test", msg, nil, ErrInvalidSignature},
		{"other key", other.Public(), "skein/v1/test", msg, sig, ErrInvalidSignature},
		{"zero key", PublicKey{}, "skein/v1/test", msg, sig, ErrInvalidSignature},
		{"empty domain", key.Public(), "", msg, sig, ErrInvalidDomain},
		{"NUL in domain", key.Public(), "skein\x00v1", msg, sig, ErrInvalidDomain},
		{"long domain", key.Public(), strings.Repeat("d", MaxDomainLen+1), msg, sig, ErrInvalidDomain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.pub.Verify(tc.domain, tc.msg, tc.sig)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("verify: unexpected error %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("verify: got %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestSignInvalidDomain(t *testing.T) {
	key := mustSigningKey(t)
	for _, d := range []string{"", "a\x00b", strings.Repeat("x", MaxDomainLen+1)} {
		if _, err := key.Sign(d, []byte("m")); !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("sign with domain %q: got %v, want ErrInvalidDomain", d, err)
		}
	}
}

func TestSigningKeySeedRoundTrip(t *testing.T) {
	key := mustSigningKey(t)
	seed := key.Seed()
	again, err := NewSigningKeyFromSeed(seed)
	if err != nil {
		t.Fatalf("from seed: %v", err)
	}
	if again.Public() != key.Public() {
		t.Fatal("public key differs after seed round trip")
	}
	sig, _ := again.Sign("skein/v1/test", []byte("x"))
	if err := key.Public().Verify("skein/v1/test", []byte("x"), sig); err != nil {
		t.Fatalf("verify with original public key: %v", err)
	}
	if _, err := NewSigningKeyFromSeed(seed[:31]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short seed: got %v, want ErrMalformed", err)
	}
}

func TestDeviceKeyRoundTrip(t *testing.T) {
	d := mustDeviceKey(t)
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != DeviceKeySize {
		t.Fatalf("encoded length %d, want %d", len(b), DeviceKeySize)
	}
	back, err := ParseDeviceKey(b)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if back.Public() != d.Public() {
		t.Fatal("public keys differ after round trip")
	}
	if d.Public().Signing == PublicKey(d.Public().X25519) {
		t.Fatal("signing and x25519 public keys are equal")
	}
	bad := map[string][]byte{
		"empty":     nil,
		"short":     b[:len(b)-1],
		"long":      append(bytes.Clone(b), 0),
		"version 2": append([]byte{2}, b[1:]...),
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseDeviceKey(in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParsePublicKeys(t *testing.T) {
	for _, n := range []int{0, 31, 33} {
		if _, err := ParsePublicKey(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePublicKey(%d bytes): got %v", n, err)
		}
		if _, err := ParseX25519PublicKey(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseX25519PublicKey(%d bytes): got %v", n, err)
		}
		if _, err := NewX25519PrivateKey(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("NewX25519PrivateKey(%d bytes): got %v", n, err)
		}
	}
	k := mustSigningKey(t)
	p, err := ParsePublicKey(k.Public().Bytes())
	if err != nil || !p.Equal(k.Public()) {
		t.Fatalf("ParsePublicKey round trip: %v", err)
	}
}

// TestSecretsNeverPrinted formats every secret-holding type with every common
// verb and checks that no secret bytes (raw or hex) appear.
func TestSecretsNeverPrinted(t *testing.T) {
	dev := mustDeviceKey(t)
	seed := dev.Signing().Seed()
	xpriv := dev.X25519().Bytes()
	chainKey := RandomKey()
	send := NewSendingChain(chainKey, 0)
	recv, err := NewReceivingChain(chainKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = recv.KeyFor(3) // keep skipped keys in it
	ks := openTestKeystore(t, t.TempDir()+"/ks")
	rstate, _ := recv.MarshalBinary()
	curChain := rstate[22:54]                                                // receiver's current chain key
	kept := rstate[receivingHeadSize+8 : receivingHeadSize+skippedEntrySize] // a kept message key
	secrets := [][]byte{seed, xpriv, chainKey[:], curChain, kept}
	values := map[string]any{
		"SigningKey":       dev.Signing(),
		"X25519PrivateKey": dev.X25519(),
		"DeviceKey":        dev,
		"SendingChain":     send,
		"ReceivingChain":   recv,
		"Keystore":         ks,
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"}
	for name, v := range values {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, v)
			for _, s := range secrets {
				low := hex.EncodeToString(s)
				dec := strings.Trim(fmt.Sprint(s[:8]), "[]") // "%d"-style rendering
				if strings.Contains(out, string(s)) || strings.Contains(strings.ToLower(out), low[:16]) ||
					strings.Contains(out, dec) {
					t.Errorf("%s formatted with %s reveals a secret: %q", name, verb, out)
				}
			}
		}
	}
	if got := fmt.Sprint(dev.Signing()); !strings.Contains(got, dev.Public().Signing.Fingerprint()) {
		t.Errorf("SigningKey prints %q, want its fingerprint %s", got, dev.Public().Signing.Fingerprint())
	}
}

func TestFingerprint(t *testing.T) {
	a, b := mustSigningKey(t), mustSigningKey(t)
	if len(a.Public().Fingerprint()) != 16 {
		t.Fatalf("fingerprint %q: want 16 hex chars", a.Public().Fingerprint())
	}
	if a.Public().Fingerprint() == b.Public().Fingerprint() {
		t.Fatal("two keys share a fingerprint")
	}
	if a.Public().Fingerprint() != a.Public().Fingerprint() {
		t.Fatal("fingerprint not deterministic")
	}
}
