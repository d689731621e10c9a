package crypto

import "errors"

// Sentinel errors. Callers test them with errors.Is; the package wraps them
// with context but never with secret material.
var (
	// ErrInvalidSignature: a signature does not verify under the given public
	// key and domain.
	ErrInvalidSignature = errors.New("invalid signature")
	// ErrInvalidDomain: a signature domain is empty, longer than
	// MaxDomainLen, or contains a NUL byte.
	ErrInvalidDomain = errors.New("invalid signature domain")
	// ErrNotCertified: a device certificate was issued by a different account
	// than the one it is checked against.
	ErrNotCertified = errors.New("device not certified by this account")
	// ErrMalformed: bytes to decode (certificate, sealed box, key, ratchet
	// state, keystore file) have the wrong length, version or structure.
	ErrMalformed = errors.New("malformed encoding")
	// ErrDecrypt: authenticated decryption failed: wrong key, wrong
	// recipient, wrong associated data, or tampered ciphertext.
	ErrDecrypt = errors.New("decryption failed")
	// ErrTooFarAhead: a ratchet index is at or beyond the skipped-key window
	// ahead of the chain; the chain is not advanced.
	ErrTooFarAhead = errors.New("ratchet index too far ahead")
	// ErrKeyUsed: the message key for this index was already handed out
	// (a replay), and the index is still inside the window.
	ErrKeyUsed = errors.New("ratchet message key already used")
	// ErrKeyExpired: the index is older than the skipped-key window; its key
	// was evicted (or used) and can never be recovered.
	ErrKeyExpired = errors.New("ratchet message key expired")
	// ErrBeforeChainStart: the index is below the index the chain started at.
	ErrBeforeChainStart = errors.New("ratchet index before chain start")
	// ErrWrongPassphrase: the keystore passphrase is wrong (detected by AEAD
	// authentication failure, never by returning garbage).
	ErrWrongPassphrase = errors.New("wrong keystore passphrase")
	// ErrWrongKeyFile: the keystore key file does not open this keystore.
	ErrWrongKeyFile = errors.New("keystore key file does not match")
	// ErrPassphraseRequired: the keystore was created with a passphrase and
	// none was given.
	ErrPassphraseRequired = errors.New("keystore requires a passphrase")
	// ErrPassphraseNotUsed: a passphrase was given for a keystore created in
	// key-file mode.
	ErrPassphraseNotUsed = errors.New("keystore uses a key file, not a passphrase")
	// ErrInsecurePermissions: a key file is readable or writable by group or
	// others (wider than 0600), or the keystore directory is wider than 0700.
	ErrInsecurePermissions = errors.New("insecure file permissions")
	// ErrNotFound: the keystore has no secret under that name.
	ErrNotFound = errors.New("secret not found")
	// ErrInvalidName: a keystore name is empty, too long or not printable
	// ASCII.
	ErrInvalidName = errors.New("invalid secret name")
	// ErrClosed: the keystore was closed.
	ErrClosed = errors.New("keystore closed")
	// ErrInvalidOption: an option value is out of range.
	ErrInvalidOption = errors.New("invalid option")
)
