package crypto

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestDeviceCertificate(t *testing.T) {
	account := mustSigningKey(t)
	attacker := mustSigningKey(t)
	device := mustDeviceKey(t)
	otherDevice := mustDeviceKey(t)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

	good, err := IssueDeviceCertificate(account, device.Public(), now)
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	byAttacker, err := IssueDeviceCertificate(attacker, otherDevice.Public(), now)
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	mod := func(f func(c *DeviceCertificate)) *DeviceCertificate {
		c := *good
		f(&c)
		return &c
	}
	tests := []struct {
		name    string
		cert    *DeviceCertificate
		account PublicKey
		wantErr error
	}{
		{"valid", good, account.Public(), nil},
		{"forged signature bit", mod(func(c *DeviceCertificate) { c.Signature[5] ^= 0x80 }), account.Public(), ErrInvalidSignature},
		{"device key swapped", mod(func(c *DeviceCertificate) { c.Device = otherDevice.Public().Signing }), account.Public(), ErrInvalidSignature},
		{"x25519 key swapped", mod(func(c *DeviceCertificate) { c.DeviceX25519 = otherDevice.Public().X25519 }), account.Public(), ErrInvalidSignature},
		{"created changed", mod(func(c *DeviceCertificate) { c.Created = c.Created.Add(time.Second) }), account.Public(), ErrInvalidSignature},
		{"other account's device", byAttacker, account.Public(), ErrNotCertified},
		{"attacker claims the account", func() *DeviceCertificate {
			c := *byAttacker
			c.Account = account.Public()
			return &c
		}(), account.Public(), ErrInvalidSignature},
		{"checked against wrong account", good, attacker.Public(), ErrNotCertified},
		{"nil", nil, account.Public(), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyDeviceCertificate(tc.cert, tc.account)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestDeviceCertificateSignatureIsDomainSeparated(t *testing.T) {
	account := mustSigningKey(t)
	device := mustDeviceKey(t)
	c, err := IssueDeviceCertificate(account, device.Public(), time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	// The same bytes signed under another domain must not pass as a certificate.
	sig, err := account.Sign("skein/v1/log-entry", c.signedPart())
	if err != nil {
		t.Fatal(err)
	}
	copy(c.Signature[:], sig)
	if err := VerifyDeviceCertificate(c, account.Public()); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("got %v, want ErrInvalidSignature", err)
	}
}

func TestDeviceCertificateEncoding(t *testing.T) {
	account := mustSigningKey(t)
	device := mustDeviceKey(t)
	c, err := IssueDeviceCertificate(account, device.Public(), time.Unix(1_790_000_000, 999).In(time.FixedZone("x", 3600)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != DeviceCertificateSize {
		t.Fatalf("length %d, want %d", len(b), DeviceCertificateSize)
	}
	var back DeviceCertificate
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if !back.Created.Equal(time.Unix(1_790_000_000, 0)) || back.DevicePublic() != device.Public() {
		t.Fatalf("decoded certificate differs: %+v", back)
	}
	if err := VerifyDeviceCertificate(&back, account.Public()); err != nil {
		t.Fatalf("verify decoded: %v", err)
	}
	b2, _ := back.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
	bad := map[string][]byte{
		"empty":     nil,
		"truncated": b[:len(b)-1],
		"trailing":  append(bytes.Clone(b), 0),
		"version 0": append([]byte{0}, b[1:]...),
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseDeviceCertificate(in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

// With the certificate table on (package sim), the same encoding parsed
// twice yields one shared certificate; any other bytes (a flipped
// signature bit) parse to their own, which does not verify; the table's
// bound drops old generations; off, every parse is a new copy.
func TestCertificateIntern(t *testing.T) {
	t.Cleanup(func() { SetCertificateInternSize(0) })
	good, err := IssueDeviceCertificate(mustSigningKey(t), mustDeviceKey(t).Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := good.MarshalBinary()
	forged := bytes.Clone(b)
	forged[len(forged)-1] ^= 1
	parse := func(b []byte) *DeviceCertificate {
		t.Helper()
		c, err := ParseDeviceCertificate(b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	SetCertificateInternSize(0)
	if parse(b) == parse(b) {
		t.Fatal("off: two parses share a certificate")
	}
	SetCertificateInternSize(4)
	c1, c2 := parse(b), parse(b)
	if c1 != c2 || *c1 != *good {
		t.Fatalf("on: parses of one encoding not shared (%p, %p) or not equal", c1, c2)
	}
	f := parse(forged)
	if f == c1 || VerifyDeviceCertificate(f, good.Account) == nil {
		t.Fatal("a forged encoding yielded the shared certificate, or verified")
	}
	if VerifyDeviceCertificate(parse(b), good.Account) != nil {
		t.Fatal("the shared certificate does not verify")
	}
	for range 4 { // two generations of 2: c1 is dropped
		other, _ := IssueDeviceCertificate(mustSigningKey(t), mustDeviceKey(t).Public(), time.Now())
		ob, _ := other.MarshalBinary()
		parse(ob)
	}
	if parse(b) == c1 {
		t.Fatal("the table kept more than its bound")
	}
}
