package crypto

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of what the default suite adds to a plaintext.
const (
	// NonceSize is the XChaCha20-Poly1305 nonce size.
	NonceSize = chacha20poly1305.NonceSizeX
	// TagSize is the Poly1305 authentication tag size.
	TagSize = chacha20poly1305.Overhead
	// SealOverhead is how many bytes Seal adds: nonce || ciphertext || tag.
	SealOverhead = NonceSize + TagSize
	// SealToOverhead is how many bytes SealTo adds:
	// ephemeral X25519 public key || ciphertext || tag.
	SealToOverhead = X25519KeySize + TagSize
)

const sealToInfo = "skein/v1/seal-to"

// Suite is a sealing scheme. The default, DefaultSuite, is
// XChaCha20-Poly1305 with X25519 + HKDF-SHA256 for sealing to a device. A
// research experiment may supply another implementation; every method must
// authenticate the associated data and fail closed (an error wrapping
// ErrDecrypt or ErrMalformed, never unauthenticated plaintext).
type Suite interface {
	// Name identifies the scheme, e.g. "xchacha20poly1305-x25519-hkdfsha256".
	Name() string
	// Seal encrypts plaintext under a 32-byte key, binding ad. It must be
	// randomized: two seals of the same plaintext differ, except with
	// negligible probability (both built-in suites start the output with
	// NonceSize fresh random bytes). core/group derives a single-use key
	// from a sealed epoch and relies on it (envelope version 4).
	Seal(key *[KeySize]byte, plaintext, ad []byte) ([]byte, error)
	// Open reverses Seal.
	Open(key *[KeySize]byte, sealed, ad []byte) ([]byte, error)
	// SealOnce encrypts plaintext under a key that seals nothing else,
	// ever (a ratchet message key), binding ad; its output is the
	// ciphertext and a TagSize (16-byte) tag, no nonce.
	SealOnce(key *[KeySize]byte, plaintext, ad []byte) ([]byte, error)
	// OpenOnce reverses SealOnce.
	OpenOnce(key *[KeySize]byte, sealed, ad []byte) ([]byte, error)
	// SealTo encrypts plaintext so only the holder of recipient's private key
	// can open it, binding ad.
	SealTo(recipient X25519PublicKey, plaintext, ad []byte) ([]byte, error)
	// OpenFrom reverses SealTo with the recipient's private key.
	OpenFrom(recipient *X25519PrivateKey, sealed, ad []byte) ([]byte, error)
}

// EphemeralSealer is the optional capability of a Suite that MultiSealer
// needs (and so core/group, which seals epoch shares to many devices at
// once): SealTo under a given ephemeral key. Its output must be exactly
// SealTo's, ephemeral public key first. Both built-in suites have it.
type EphemeralSealer interface {
	Suite
	// SealToEphemeral is SealTo with eph as the ephemeral key. The caller
	// uses eph for one message only.
	SealToEphemeral(eph *X25519PrivateKey, recipient X25519PublicKey, plaintext, ad []byte) ([]byte, error)
}

// XChaChaSuite is the default Suite.
//
// Seal output: nonce(24, random) || XChaCha20-Poly1305(key, nonce, plaintext, ad).
//
// SealTo output: ephemeral X25519 public key(32) || XChaCha20-Poly1305(k, n,
// plaintext, ad), where k(32) || n(24) = HKDF-SHA256(ikm = X25519(ephemeral,
// recipient), salt = ephemeral public || recipient public,
// info = "skein/v1/seal-to", length 56). The nonce can be derived because
// every ephemeral key, and so every k, is used once.
type XChaChaSuite struct{}

var _ EphemeralSealer = XChaChaSuite{}

// DefaultSuite returns the default sealing scheme, XChaChaSuite.
func DefaultSuite() Suite { return XChaChaSuite{} }

// Name returns "xchacha20poly1305-x25519-hkdfsha256".
func (XChaChaSuite) Name() string { return "xchacha20poly1305-x25519-hkdfsha256" }

// Seal implements Suite.
func (XChaChaSuite) Seal(key *[KeySize]byte, plaintext, ad []byte) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("seal: %w: nil key", ErrInvalidOption)
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out := make([]byte, NonceSize, NonceSize+len(plaintext)+TagSize)
	_, _ = rand.Read(out) // crypto/rand.Read never fails (Go >= 1.24)
	return aead.Seal(out, out[:NonceSize], plaintext, ad), nil
}

// Open implements Suite.
func (XChaChaSuite) Open(key *[KeySize]byte, sealed, ad []byte) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("open: %w: nil key", ErrInvalidOption)
	}
	if len(sealed) < SealOverhead {
		return nil, fmt.Errorf("open: %w: sealed length %d below minimum %d", ErrMalformed, len(sealed), SealOverhead)
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	plain, err := aead.Open(nil, sealed[:NonceSize], sealed[NonceSize:], ad)
	if err != nil {
		return nil, fmt.Errorf("open: %w", ErrDecrypt)
	}
	return plain, nil
}

// SealTo implements Suite.
func (XChaChaSuite) SealTo(recipient X25519PublicKey, plaintext, ad []byte) ([]byte, error) {
	rpub, err := ecdh.X25519().NewPublicKey(recipient[:])
	if err != nil {
		return nil, fmt.Errorf("seal to %s: %w: recipient key", recipient.Fingerprint(), ErrMalformed)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seal to %s: %w", recipient.Fingerprint(), err)
	}
	return sealToWith(eph, rpub, recipient, plaintext, ad)
}

// SealToEphemeral implements EphemeralSealer.
func (XChaChaSuite) SealToEphemeral(eph *X25519PrivateKey, recipient X25519PublicKey, plaintext, ad []byte) ([]byte, error) {
	if eph == nil {
		return nil, fmt.Errorf("seal to %s: %w: nil ephemeral key", recipient.Fingerprint(), ErrInvalidOption)
	}
	rpub, err := ecdh.X25519().NewPublicKey(recipient[:])
	if err != nil {
		return nil, fmt.Errorf("seal to %s: %w: recipient key", recipient.Fingerprint(), ErrMalformed)
	}
	return sealToWith(eph.priv, rpub, recipient, plaintext, ad)
}

// sealToWith is SealTo with a given ephemeral key (test vectors use a fixed one).
func sealToWith(eph *ecdh.PrivateKey, rpub *ecdh.PublicKey, recipient X25519PublicKey, plaintext, ad []byte) ([]byte, error) {
	shared, err := eph.ECDH(rpub)
	if err != nil {
		// A low-order recipient point gives an all-zero secret.
		return nil, fmt.Errorf("seal to %s: %w: recipient key is a low-order point", recipient.Fingerprint(), ErrMalformed)
	}
	ephPub := eph.PublicKey().Bytes()
	aead, nonce, err := sealToAEAD(shared, ephPub, recipient[:])
	clear(shared)
	if err != nil {
		return nil, fmt.Errorf("seal to %s: %w", recipient.Fingerprint(), err)
	}
	out := make([]byte, 0, SealToOverhead+len(plaintext))
	out = append(out, ephPub...)
	return aead.Seal(out, nonce, plaintext, ad), nil
}

// OpenFrom implements Suite.
func (XChaChaSuite) OpenFrom(recipient *X25519PrivateKey, sealed, ad []byte) ([]byte, error) {
	if recipient == nil {
		return nil, fmt.Errorf("open sealed box: %w: nil key", ErrInvalidOption)
	}
	if len(sealed) < SealToOverhead {
		return nil, fmt.Errorf("open sealed box: %w: length %d below minimum %d", ErrMalformed, len(sealed), SealToOverhead)
	}
	ephPub := sealed[:X25519KeySize]
	epub, err := ecdh.X25519().NewPublicKey(ephPub)
	if err != nil {
		return nil, fmt.Errorf("open sealed box: %w: ephemeral key", ErrMalformed)
	}
	shared, err := recipient.priv.ECDH(epub)
	if err != nil {
		return nil, fmt.Errorf("open sealed box: %w: ephemeral key is a low-order point", ErrDecrypt)
	}
	aead, nonce, err := sealToAEAD(shared, ephPub, recipient.pub[:])
	clear(shared)
	if err != nil {
		return nil, fmt.Errorf("open sealed box: %w", err)
	}
	plain, err := aead.Open(nil, nonce, sealed[X25519KeySize:], ad)
	if err != nil {
		return nil, fmt.Errorf("open sealed box for %s: %w", recipient.pub.Fingerprint(), ErrDecrypt)
	}
	return plain, nil
}

type aeadCipher interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}

func sealToAEAD(shared, ephPub, recipientPub []byte) (aeadCipher, []byte, error) {
	salt := make([]byte, 0, 2*X25519KeySize)
	salt = append(salt, ephPub...)
	salt = append(salt, recipientPub...)
	okm, err := hkdf.Key(sha256.New, shared, salt, sealToInfo, KeySize+NonceSize)
	if err != nil {
		return nil, nil, err
	}
	aead, err := chacha20poly1305.NewX(okm[:KeySize])
	clear(okm[:KeySize])
	if err != nil {
		return nil, nil, err
	}
	return aead, okm[KeySize:], nil
}

// Seal encrypts plaintext under key with DefaultSuite, binding ad.
// Output: 24-byte random nonce || ciphertext || 16-byte tag.
func Seal(key *[KeySize]byte, plaintext, ad []byte) ([]byte, error) {
	return XChaChaSuite{}.Seal(key, plaintext, ad)
}

// Open decrypts the output of Seal. Wrong key, wrong ad or tampering gives an
// error wrapping ErrDecrypt; a too-short input, ErrMalformed.
func Open(key *[KeySize]byte, sealed, ad []byte) ([]byte, error) {
	return XChaChaSuite{}.Open(key, sealed, ad)
}

// SealOnce implements Suite: it encrypts plaintext under a key that seals
// nothing else, ever (a ratchet message key), binding ad. Output: ciphertext || 16-byte tag:
// XChaCha20-Poly1305 with the all-zero nonce, which is safe only because
// the key is used for one plaintext; under any other key use Seal.
func (XChaChaSuite) SealOnce(key *[KeySize]byte, plaintext, ad []byte) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("seal once: %w: nil key", ErrInvalidOption)
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, fmt.Errorf("seal once: %w", err)
	}
	var nonce [NonceSize]byte
	return aead.Seal(make([]byte, 0, len(plaintext)+TagSize), nonce[:], plaintext, ad), nil
}

// OpenOnce implements Suite: it decrypts the output of SealOnce. Wrong key, wrong ad or
// tampering gives an error wrapping ErrDecrypt; an input shorter than the
// tag, ErrMalformed.
func (XChaChaSuite) OpenOnce(key *[KeySize]byte, sealed, ad []byte) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("open once: %w: nil key", ErrInvalidOption)
	}
	if len(sealed) < TagSize {
		return nil, fmt.Errorf("open once: %w: sealed length %d below minimum %d", ErrMalformed, len(sealed), TagSize)
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, fmt.Errorf("open once: %w", err)
	}
	var nonce [NonceSize]byte
	plain, err := aead.Open(nil, nonce[:], sealed, ad)
	if err != nil {
		return nil, fmt.Errorf("open once: %w", ErrDecrypt)
	}
	return plain, nil
}

// SealOnce encrypts plaintext under a single-use key with DefaultSuite,
// binding ad (see XChaChaSuite.SealOnce).
func SealOnce(key *[KeySize]byte, plaintext, ad []byte) ([]byte, error) {
	return XChaChaSuite{}.SealOnce(key, plaintext, ad)
}

// OpenOnce decrypts the output of SealOnce with DefaultSuite.
func OpenOnce(key *[KeySize]byte, sealed, ad []byte) ([]byte, error) {
	return XChaChaSuite{}.OpenOnce(key, sealed, ad)
}

// SealTo seals plaintext to a device's X25519 public key with DefaultSuite,
// binding ad.
func SealTo(recipient X25519PublicKey, plaintext, ad []byte) ([]byte, error) {
	return XChaChaSuite{}.SealTo(recipient, plaintext, ad)
}

// OpenFrom opens the output of SealTo with the recipient device's private
// key. A box for another recipient, wrong ad or tampering gives an error
// wrapping ErrDecrypt; a too-short input, ErrMalformed.
func OpenFrom(recipient *X25519PrivateKey, sealed, ad []byte) ([]byte, error) {
	return XChaChaSuite{}.OpenFrom(recipient, sealed, ad)
}

// RandomKey returns 32 bytes from crypto/rand: a fresh group secret, chain key
// or symmetric key.
func RandomKey() [KeySize]byte {
	var k [KeySize]byte
	_, _ = rand.Read(k[:]) // never fails (Go >= 1.24)
	return k
}

// DeriveKey returns HKDF-SHA256(secret, salt, info) truncated to 32 bytes,
// for deriving independent keys (topics, epoch keys, chain keys) from one
// secret. Use a distinct info label per purpose, e.g. "skein/v1/group-topic".
func DeriveKey(secret, salt []byte, info string) ([KeySize]byte, error) {
	var k [KeySize]byte
	okm, err := hkdf.Key(sha256.New, secret, salt, info, KeySize)
	if err != nil {
		return k, fmt.Errorf("derive key %q: %w", info, err)
	}
	copy(k[:], okm)
	clear(okm)
	return k, nil
}

// MultiSealer seals to many devices with one ephemeral X25519 key, so a
// message to n recipients carries the 32-byte ephemeral public key once
// instead of n times. Each box is exactly the output of SealTo with that
// ephemeral key, without its 32-byte prefix: recipient R opens box with
// OpenFrom(R, ephemeral || box, ad). Keys and nonces stay distinct per
// recipient because HKDF's salt binds the recipient's public key; reusing
// the ephemeral key across recipients is the randomness re-use of
// multi-recipient Diffie-Hellman encryption (Bellare, Boldyreva, Staddon,
// PKC 2003), secure for this construction. Use one MultiSealer per message
// and Destroy it after.
type MultiSealer struct {
	suite EphemeralSealer
	eph   *X25519PrivateKey
}

// NewMultiSealer draws a fresh ephemeral key, for DefaultSuite.
func NewMultiSealer() (*MultiSealer, error) {
	return NewMultiSealerFor(XChaChaSuite{})
}

// NewMultiSealerFor draws a fresh ephemeral key, for suite s. A suite
// without the EphemeralSealer capability is an error wrapping
// ErrInvalidOption.
func NewMultiSealerFor(s Suite) (*MultiSealer, error) {
	es, ok := s.(EphemeralSealer)
	if !ok {
		return nil, fmt.Errorf("seal to many: %w: suite %q cannot seal under a given ephemeral key (no SealToEphemeral)", ErrInvalidOption, s.Name())
	}
	eph, err := GenerateX25519Key()
	if err != nil {
		return nil, fmt.Errorf("seal to many: %w", err)
	}
	return &MultiSealer{suite: es, eph: eph}, nil
}

// Ephemeral returns the ephemeral public key to send beside the boxes.
func (m *MultiSealer) Ephemeral() X25519PublicKey {
	return m.eph.Public()
}

// SealTo seals plaintext to recipient, binding ad, and returns the box
// (ciphertext || tag, len(plaintext) + TagSize bytes with the built-in
// suites). A low-order recipient key is an error wrapping ErrMalformed;
// the sealer stays usable for the other recipients.
func (m *MultiSealer) SealTo(recipient X25519PublicKey, plaintext, ad []byte) ([]byte, error) {
	if m.eph == nil {
		return nil, fmt.Errorf("seal to %s: %w: sealer destroyed", recipient.Fingerprint(), ErrInvalidOption)
	}
	out, err := m.suite.SealToEphemeral(m.eph, recipient, plaintext, ad)
	if err != nil {
		return nil, err
	}
	if len(out) < X25519KeySize {
		return nil, fmt.Errorf("seal to %s: %w: suite %q returned %d bytes", recipient.Fingerprint(), ErrMalformed, m.suite.Name(), len(out))
	}
	return out[X25519KeySize:], nil
}

// Destroy forgets the ephemeral private key.
func (m *MultiSealer) Destroy() { m.eph = nil }
