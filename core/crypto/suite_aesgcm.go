package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// AESGCMSuiteName is the name of AESGCMSuite.
const AESGCMSuiteName = "aes256gcm-x25519-hkdfsha256"

// Labels of AESGCMSuite's key derivations.
const (
	aesSealInfo   = "skein/v1/aes256gcm/seal"
	aesSealToInfo = "skein/v1/aes256gcm/seal-to"
	aesOnceInfo   = "skein/v1/aes256gcm/seal-once"
	aesNonceSize  = 12
)

// AESGCMSuite is a second Suite, for experiments: AES-256-GCM with
// X25519 + HKDF-SHA256, from the standard library only (FIPS 140-3
// approved primitives; AES-NI makes it faster than ChaCha20 on most
// x86-64 servers). Its outputs have exactly the sizes of XChaChaSuite's,
// so every wire format of core/group holds either.
//
// Seal output: salt(24, random) || AES-256-GCM(k, n, plaintext, ad),
// where k(32) || n(12) = HKDF-SHA256(ikm = key, salt = salt,
// info = "skein/v1/aes256gcm/seal", length 44). A fresh key per message
// lifts GCM's 96-bit random-nonce limit (about 2^32 messages per key) as
// XChaCha20's 192-bit nonce does: the same 24-byte salt gives the same
// overhead, 40 bytes.
//
// SealTo output: ephemeral X25519 public key(32) || AES-256-GCM(k, n,
// plaintext, ad), where k(32) || n(12) = HKDF-SHA256(ikm =
// X25519(ephemeral, recipient), salt = ephemeral public || recipient
// public, info = "skein/v1/aes256gcm/seal-to", length 44); 48 bytes of
// overhead.
type AESGCMSuite struct{}

var _ EphemeralSealer = AESGCMSuite{}

// Name returns AESGCMSuiteName.
func (AESGCMSuite) Name() string { return AESGCMSuiteName }

// aesGCMFrom derives one message's AES-256-GCM key and nonce.
func aesGCMFrom(ikm, salt []byte, info string) (cipher.AEAD, []byte, error) {
	okm, err := hkdf.Key(sha256.New, ikm, salt, info, KeySize+aesNonceSize)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(okm[:KeySize])
	clear(okm[:KeySize])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	return aead, okm[KeySize:], nil
}

// Seal implements Suite.
func (s AESGCMSuite) Seal(key *[KeySize]byte, plaintext, ad []byte) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("seal: %w: nil key", ErrInvalidOption)
	}
	var salt [NonceSize]byte
	_, _ = rand.Read(salt[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return s.sealWithSalt(key, &salt, plaintext, ad)
}

// sealWithSalt is Seal with a given salt (test vectors use a fixed one).
func (AESGCMSuite) sealWithSalt(key *[KeySize]byte, salt *[NonceSize]byte, plaintext, ad []byte) ([]byte, error) {
	aead, n, err := aesGCMFrom(key[:], salt[:], aesSealInfo)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out := make([]byte, NonceSize, SealOverhead+len(plaintext))
	copy(out, salt[:])
	return aead.Seal(out, n, plaintext, ad), nil
}

// Open implements Suite.
func (AESGCMSuite) Open(key *[KeySize]byte, sealed, ad []byte) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("open: %w: nil key", ErrInvalidOption)
	}
	if len(sealed) < SealOverhead {
		return nil, fmt.Errorf("open: %w: sealed length %d below minimum %d", ErrMalformed, len(sealed), SealOverhead)
	}
	aead, n, err := aesGCMFrom(key[:], sealed[:NonceSize], aesSealInfo)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	plain, err := aead.Open(nil, n, sealed[NonceSize:], ad)
	if err != nil {
		return nil, fmt.Errorf("open: %w", ErrDecrypt)
	}
	return plain, nil
}

// SealOnce implements Suite. Output: AES-256-GCM(k, n, plaintext, ad),
// where k(32) || n(12) = HKDF-SHA256(ikm = key, no salt,
// info = "skein/v1/aes256gcm/seal-once", length 44): a derived nonce, safe
// because the key seals one plaintext only; 16 bytes of overhead.
func (AESGCMSuite) SealOnce(key *[KeySize]byte, plaintext, ad []byte) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("seal once: %w: nil key", ErrInvalidOption)
	}
	aead, n, err := aesGCMFrom(key[:], nil, aesOnceInfo)
	if err != nil {
		return nil, fmt.Errorf("seal once: %w", err)
	}
	return aead.Seal(make([]byte, 0, len(plaintext)+TagSize), n, plaintext, ad), nil
}

// OpenOnce implements Suite: it reverses SealOnce.
func (AESGCMSuite) OpenOnce(key *[KeySize]byte, sealed, ad []byte) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("open once: %w: nil key", ErrInvalidOption)
	}
	if len(sealed) < TagSize {
		return nil, fmt.Errorf("open once: %w: sealed length %d below minimum %d", ErrMalformed, len(sealed), TagSize)
	}
	aead, n, err := aesGCMFrom(key[:], nil, aesOnceInfo)
	if err != nil {
		return nil, fmt.Errorf("open once: %w", err)
	}
	plain, err := aead.Open(nil, n, sealed, ad)
	if err != nil {
		return nil, fmt.Errorf("open once: %w", ErrDecrypt)
	}
	return plain, nil
}

// SealTo implements Suite.
func (s AESGCMSuite) SealTo(recipient X25519PublicKey, plaintext, ad []byte) ([]byte, error) {
	eph, err := GenerateX25519Key()
	if err != nil {
		return nil, fmt.Errorf("seal to %s: %w", recipient.Fingerprint(), err)
	}
	return s.SealToEphemeral(eph, recipient, plaintext, ad)
}

// SealToEphemeral implements EphemeralSealer.
func (AESGCMSuite) SealToEphemeral(eph *X25519PrivateKey, recipient X25519PublicKey, plaintext, ad []byte) ([]byte, error) {
	if eph == nil {
		return nil, fmt.Errorf("seal to %s: %w: nil ephemeral key", recipient.Fingerprint(), ErrInvalidOption)
	}
	rpub, err := ecdh.X25519().NewPublicKey(recipient[:])
	if err != nil {
		return nil, fmt.Errorf("seal to %s: %w: recipient key", recipient.Fingerprint(), ErrMalformed)
	}
	shared, err := eph.priv.ECDH(rpub)
	if err != nil {
		return nil, fmt.Errorf("seal to %s: %w: recipient key is a low-order point", recipient.Fingerprint(), ErrMalformed)
	}
	ephPub := eph.Public()
	aead, n, err := aesGCMFrom(shared, append(ephPub[:], recipient[:]...), aesSealToInfo)
	clear(shared)
	if err != nil {
		return nil, fmt.Errorf("seal to %s: %w", recipient.Fingerprint(), err)
	}
	out := make([]byte, 0, SealToOverhead+len(plaintext))
	out = append(out, ephPub[:]...)
	return aead.Seal(out, n, plaintext, ad), nil
}

// OpenFrom implements Suite.
func (AESGCMSuite) OpenFrom(recipient *X25519PrivateKey, sealed, ad []byte) ([]byte, error) {
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
	aead, n, err := aesGCMFrom(shared, append(ephPub[:X25519KeySize:X25519KeySize], recipient.pub[:]...), aesSealToInfo)
	clear(shared)
	if err != nil {
		return nil, fmt.Errorf("open sealed box: %w", err)
	}
	plain, err := aead.Open(nil, n, sealed[X25519KeySize:], ad)
	if err != nil {
		return nil, fmt.Errorf("open sealed box for %s: %w", recipient.pub.Fingerprint(), ErrDecrypt)
	}
	return plain, nil
}

// Suites lists the built-in suites by name: DefaultSuite's and
// AESGCMSuite's.
func Suites() map[string]Suite {
	return map[string]Suite{
		XChaChaSuite{}.Name(): XChaChaSuite{},
		AESGCMSuiteName:       AESGCMSuite{},
	}
}

// SuiteByName returns the built-in suite named name, or an error wrapping
// ErrInvalidOption that lists the names known.
func SuiteByName(name string) (Suite, error) {
	if s, ok := Suites()[name]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("crypto suite %q: %w: the built-in suites are %q and %q", name, ErrInvalidOption, XChaChaSuite{}.Name(), AESGCMSuiteName)
}

// CheckSuiteSizes reports whether s adds exactly the default suite's
// overheads (SealOverhead to Seal, SealToOverhead to SealTo), which the
// fixed-size fields of core/group's wire formats assume. It seals a test
// message with a random key.
func CheckSuiteSizes(s Suite) error {
	if s == nil {
		return fmt.Errorf("crypto suite: %w: nil", ErrInvalidOption)
	}
	k := RandomKey()
	out, err := s.Seal(&k, make([]byte, 7), nil)
	if err != nil {
		return fmt.Errorf("crypto suite %q: seal: %w", s.Name(), err)
	}
	if len(out) != 7+SealOverhead {
		return fmt.Errorf("crypto suite %q: %w: Seal adds %d bytes, the group wire formats need %d", s.Name(), ErrInvalidOption, len(out)-7, SealOverhead)
	}
	r, err := GenerateX25519Key()
	if err != nil {
		return err
	}
	out, err = s.SealTo(r.Public(), make([]byte, 7), nil)
	if err != nil {
		return fmt.Errorf("crypto suite %q: seal to: %w", s.Name(), err)
	}
	if len(out) != 7+SealToOverhead {
		return fmt.Errorf("crypto suite %q: %w: SealTo adds %d bytes, the group wire formats need %d", s.Name(), ErrInvalidOption, len(out)-7, SealToOverhead)
	}
	return nil
}
