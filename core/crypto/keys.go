package crypto

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"

	"github.com/skein-p2p/skein/internal/sigcache"
)

// Key and signature sizes in bytes.
const (
	// PublicKeySize is the size of an Ed25519 public key.
	PublicKeySize = ed25519.PublicKeySize
	// SeedSize is the size of an Ed25519 private key seed, the form in which
	// a SigningKey is stored.
	SeedSize = ed25519.SeedSize
	// SignatureSize is the size of an Ed25519 signature.
	SignatureSize = ed25519.SignatureSize
	// X25519KeySize is the size of an X25519 public or private key.
	X25519KeySize = 32
	// KeySize is the size of a symmetric key (XChaCha20-Poly1305, chain and
	// message keys).
	KeySize = 32
	// MaxDomainLen is the longest signature domain accepted.
	MaxDomainLen = 255
	// DeviceKeySize is the length of DeviceKey.MarshalBinary's output.
	DeviceKeySize = 1 + SeedSize + X25519KeySize
)

const deviceKeyVersion = 1

// PublicKey is an Ed25519 public key: an account, device or group identity.
// It is not secret; String prints it in full as lowercase hex.
type PublicKey [PublicKeySize]byte

// ParsePublicKey copies a 32-byte Ed25519 public key. It fails with
// ErrMalformed on any other length. (A point that is not a valid key simply
// never verifies a signature.)
func ParsePublicKey(b []byte) (PublicKey, error) {
	var p PublicKey
	if len(b) != PublicKeySize {
		return p, fmt.Errorf("parse public key: %w: length %d, want %d", ErrMalformed, len(b), PublicKeySize)
	}
	copy(p[:], b)
	return p, nil
}

// Bytes returns a copy of the key as a slice.
func (p PublicKey) Bytes() []byte { return append([]byte(nil), p[:]...) }

// Equal reports whether p and q are the same key.
func (p PublicKey) Equal(q PublicKey) bool { return subtle.ConstantTimeCompare(p[:], q[:]) == 1 }

// IsZero reports whether p is the all-zero value (no key set).
func (p PublicKey) IsZero() bool { return p == PublicKey{} }

// String returns the key as 64 lowercase hex characters.
func (p PublicKey) String() string { return hex.EncodeToString(p[:]) }

// Fingerprint returns a short human-comparable digest of the key:
// the first 8 bytes of SHA-256("skein/v1/fingerprint" || 0x00 || key) as hex.
func (p PublicKey) Fingerprint() string { return fingerprint(p[:]) }

// Verify checks an Ed25519 signature made by SigningKey.Sign with the same
// domain. It returns nil or an error wrapping ErrInvalidSignature or
// ErrInvalidDomain.
func (p PublicKey) Verify(domain string, msg, sig []byte) error {
	m, err := domainMessage(domain, msg)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if len(sig) != SignatureSize || !sigcache.Verify(ed25519.PublicKey(p[:]), m, sig) {
		return fmt.Errorf("verify %s signature by %s: %w", domain, p.Fingerprint(), ErrInvalidSignature)
	}
	return nil
}

// SigningKey is an Ed25519 private key (account, device or group). Printing it
// with any fmt verb shows only the fingerprint of its public key.
type SigningKey struct {
	priv ed25519.PrivateKey
	pub  PublicKey
}

// GenerateSigningKey returns a new random Ed25519 key from crypto/rand.
func GenerateSigningKey() (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return newSigningKey(priv), nil
}

// NewSigningKeyFromSeed rebuilds a key from its 32-byte seed (the output of
// Seed). The seed is copied; the caller may zero it afterwards.
func NewSigningKeyFromSeed(seed []byte) (*SigningKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("signing key from seed: %w: length %d, want %d", ErrMalformed, len(seed), SeedSize)
	}
	return newSigningKey(ed25519.NewKeyFromSeed(seed)), nil
}

func newSigningKey(priv ed25519.PrivateKey) *SigningKey {
	k := &SigningKey{priv: priv}
	copy(k.pub[:], priv[SeedSize:])
	return k
}

// Public returns the public key.
func (k *SigningKey) Public() PublicKey { return k.pub }

// Seed returns a copy of the 32-byte private seed, for storing in a Keystore.
// The caller should zero it when done.
func (k *SigningKey) Seed() []byte { return append([]byte(nil), k.priv.Seed()...) }

// Sign signs domain || 0x00 || msg with Ed25519. The domain names the purpose
// ("skein/v1/log-entry"); it must be 1..MaxDomainLen bytes without NUL,
// otherwise Sign returns an error wrapping ErrInvalidDomain.
func (k *SigningKey) Sign(domain string, msg []byte) ([]byte, error) {
	m, err := domainMessage(domain, msg)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return ed25519.Sign(k.priv, m), nil
}

// Destroy zeroes the private key. The key must not be used afterwards.
func (k *SigningKey) Destroy() { clear(k.priv) }

// String returns "SigningKey(<fingerprint>)".
func (k *SigningKey) String() string { return "SigningKey(" + k.pub.Fingerprint() + ")" }

// GoString is the same as String, so %#v does not reveal the key.
func (k *SigningKey) GoString() string { return k.String() }

// Format prints String for every verb, so no verb (%x, %v, %+v) prints the
// private key.
func (k *SigningKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// X25519PublicKey is a device's X25519 public key, the recipient of SealTo.
type X25519PublicKey [X25519KeySize]byte

// ParseX25519PublicKey copies a 32-byte X25519 public key; any other length
// is ErrMalformed.
func ParseX25519PublicKey(b []byte) (X25519PublicKey, error) {
	var p X25519PublicKey
	if len(b) != X25519KeySize {
		return p, fmt.Errorf("parse x25519 public key: %w: length %d, want %d", ErrMalformed, len(b), X25519KeySize)
	}
	copy(p[:], b)
	return p, nil
}

// String returns the key as 64 lowercase hex characters.
func (p X25519PublicKey) String() string { return hex.EncodeToString(p[:]) }

// Fingerprint returns a short digest of the key, as PublicKey.Fingerprint.
func (p X25519PublicKey) Fingerprint() string { return fingerprint(p[:]) }

// X25519PrivateKey is a device's X25519 private key, used by OpenFrom.
// Printing it shows only the fingerprint of its public key.
type X25519PrivateKey struct {
	priv *ecdh.PrivateKey
	pub  X25519PublicKey
}

// GenerateX25519Key returns a new random X25519 key pair.
func GenerateX25519Key() (*X25519PrivateKey, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate x25519 key: %w", err)
	}
	return newX25519(priv), nil
}

// NewX25519PrivateKey rebuilds a private key from its 32 bytes (the output of
// Bytes).
func NewX25519PrivateKey(b []byte) (*X25519PrivateKey, error) {
	if len(b) != X25519KeySize {
		return nil, fmt.Errorf("x25519 private key: %w: length %d, want %d", ErrMalformed, len(b), X25519KeySize)
	}
	priv, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("x25519 private key: %w", ErrMalformed)
	}
	return newX25519(priv), nil
}

func newX25519(priv *ecdh.PrivateKey) *X25519PrivateKey {
	k := &X25519PrivateKey{priv: priv}
	copy(k.pub[:], priv.PublicKey().Bytes())
	return k
}

// Public returns the public key.
func (k *X25519PrivateKey) Public() X25519PublicKey { return k.pub }

// Bytes returns a copy of the 32-byte private key, for storing in a Keystore.
func (k *X25519PrivateKey) Bytes() []byte { return k.priv.Bytes() }

// String returns "X25519PrivateKey(<fingerprint>)".
func (k *X25519PrivateKey) String() string {
	return "X25519PrivateKey(" + k.pub.Fingerprint() + ")"
}

// GoString is the same as String.
func (k *X25519PrivateKey) GoString() string { return k.String() }

// Format prints String for every verb.
func (k *X25519PrivateKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// DeviceKey is everything private about one device: an Ed25519 signing key
// (signs log entries) and an X25519 key (opens what is sealed to the device).
// The two are generated independently; neither is derived from the other.
type DeviceKey struct {
	signing   *SigningKey
	agreement *X25519PrivateKey
}

// DevicePublic is the public half of a DeviceKey: what a certificate binds.
type DevicePublic struct {
	// Signing is the device's Ed25519 public key.
	Signing PublicKey
	// X25519 is the device's key-agreement public key.
	X25519 X25519PublicKey
}

// GenerateDeviceKey returns a new device key with independent random Ed25519
// and X25519 key pairs.
func GenerateDeviceKey() (*DeviceKey, error) {
	s, err := GenerateSigningKey()
	if err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	x, err := GenerateX25519Key()
	if err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	return &DeviceKey{signing: s, agreement: x}, nil
}

// NewDeviceKey assembles a device key from its two parts.
func NewDeviceKey(signing *SigningKey, agreement *X25519PrivateKey) *DeviceKey {
	return &DeviceKey{signing: signing, agreement: agreement}
}

// ParseDeviceKey decodes the output of DeviceKey.MarshalBinary
// (version 0x01 || Ed25519 seed || X25519 private key).
func ParseDeviceKey(b []byte) (*DeviceKey, error) {
	if len(b) != DeviceKeySize || b[0] != deviceKeyVersion {
		return nil, fmt.Errorf("parse device key: %w", ErrMalformed)
	}
	s, err := NewSigningKeyFromSeed(b[1 : 1+SeedSize])
	if err != nil {
		return nil, fmt.Errorf("parse device key: %w", err)
	}
	x, err := NewX25519PrivateKey(b[1+SeedSize:])
	if err != nil {
		return nil, fmt.Errorf("parse device key: %w", err)
	}
	return &DeviceKey{signing: s, agreement: x}, nil
}

// MarshalBinary encodes the private key (DeviceKeySize bytes) for a Keystore.
// The caller should zero the result when done. It never fails.
func (d *DeviceKey) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, DeviceKeySize)
	out = append(out, deviceKeyVersion)
	seed := d.signing.priv.Seed()
	out = append(out, seed...)
	xb := d.agreement.priv.Bytes()
	out = append(out, xb...)
	clear(xb)
	return out, nil
}

// Signing returns the device's Ed25519 key.
func (d *DeviceKey) Signing() *SigningKey { return d.signing }

// X25519 returns the device's X25519 private key, for OpenFrom.
func (d *DeviceKey) X25519() *X25519PrivateKey { return d.agreement }

// Public returns both public keys.
func (d *DeviceKey) Public() DevicePublic {
	return DevicePublic{Signing: d.signing.pub, X25519: d.agreement.pub}
}

// Destroy zeroes the signing key. (crypto/ecdh keeps the X25519 scalar in
// memory it does not let us clear; drop the DeviceKey to release it.)
func (d *DeviceKey) Destroy() { d.signing.Destroy() }

// String returns "DeviceKey(<signing key fingerprint>)".
func (d *DeviceKey) String() string { return "DeviceKey(" + d.signing.pub.Fingerprint() + ")" }

// GoString is the same as String.
func (d *DeviceKey) GoString() string { return d.String() }

// Format prints String for every verb.
func (d *DeviceKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(d.String())) }

func fingerprint(b []byte) string {
	h := sha256.New()
	h.Write([]byte("skein/v1/fingerprint\x00"))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// domainMessage returns domain || 0x00 || msg after checking the domain.
func domainMessage(domain string, msg []byte) ([]byte, error) {
	if len(domain) == 0 || len(domain) > MaxDomainLen {
		return nil, fmt.Errorf("%w: length %d", ErrInvalidDomain, len(domain))
	}
	for i := 0; i < len(domain); i++ {
		if domain[i] == 0 {
			return nil, fmt.Errorf("%w: contains NUL", ErrInvalidDomain)
		}
	}
	m := make([]byte, 0, len(domain)+1+len(msg))
	m = append(m, domain...)
	m = append(m, 0)
	return append(m, msg...), nil
}
