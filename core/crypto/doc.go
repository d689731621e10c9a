// Package crypto holds Skein's cryptographic building blocks: Ed25519 account
// and device keys, device certificates, X25519 sealing to a device,
// XChaCha20-Poly1305 symmetric sealing, a per-device symmetric ratchet with
// forward secrecy, and a keystore that keeps every secret sealed at rest.
//
// Every primitive comes from the standard library or golang.org/x/crypto:
// crypto/ed25519, crypto/ecdh (X25519), crypto/hkdf and crypto/hmac with
// SHA-256, golang.org/x/crypto/chacha20poly1305 (XChaCha20-Poly1305) and
// golang.org/x/crypto/argon2 (Argon2id). Nothing here is home-made; the
// package only fixes encodings, labels and domain separation, which
// docs/protocol.md specifies byte for byte.
//
// # Keys and identities
//
// An account is an Ed25519 [SigningKey]. A device has its own [DeviceKey]: an
// Ed25519 signing key plus an independent X25519 key pair for key agreement.
// The account certifies a device with a [DeviceCertificate]; a peer checks it
// with [VerifyDeviceCertificate] before trusting anything the device signs.
//
//	account, _ := crypto.GenerateSigningKey()
//	device, _ := crypto.GenerateDeviceKey()
//	cert, _ := crypto.IssueDeviceCertificate(account, device.Public(), time.Now())
//	if err := crypto.VerifyDeviceCertificate(cert, account.Public()); err != nil { ... }
//
// Signatures are always domain-separated: [SigningKey.Sign] and
// [PublicKey.Verify] take a domain string such as "skein/v1/device-cert", so a
// signature made for one purpose never verifies for another.
//
// # Sealing
//
// [SealTo] seals to a device's X25519 public key (ephemeral X25519, HKDF-SHA256,
// XChaCha20-Poly1305); [OpenFrom] opens with the device's private key. [Seal]
// and [Open] seal under a 32-byte symmetric key with a random 24-byte nonce.
// Both bind associated data. All of them go through [DefaultSuite]; a research
// experiment can supply another [Suite], such as [AESGCMSuite] (AES-256-GCM,
// the same sizes), which core/group takes with group.WithSuite.
//
// # Ratchet
//
// A sender keeps a [SendingChain] per (device, group, epoch) and calls
// [SendingChain.Next] for each message; a receiver keeps a [ReceivingChain] for
// each sender device and calls [ReceivingChain.KeyFor] with the index carried
// by the message. A used message key is deleted, so the current state cannot
// recover earlier message keys (forward secrecy); a bounded window of skipped
// keys handles out-of-order delivery.
//
//	idx, mk := sender.Next()
//	sealed, _ := crypto.Seal(&mk, payload, ad)
//	...
//	mk2, err := receiver.KeyFor(idx) // ErrKeyUsed on replay
//	plain, err := crypto.Open(&mk2, sealed, ad)
//
// # Keystore
//
// A [Keystore] is a directory of sealed secrets. With a passphrase, the key
// encryption key comes from Argon2id; without one, from a random 32-byte key
// file (mode 0600) kept with the store. A wrong passphrase is reported as
// [ErrWrongPassphrase].
//
//	ks, err := crypto.OpenKeystore(dir, crypto.WithPassphrase(pass))
//	b, _ := device.MarshalBinary()
//	err = ks.Put("device/key", b)
//	b, err = ks.Get("device/key")
//	device, err = crypto.ParseDeviceKey(b)
//
// # Secrets
//
// Types that hold secrets print only a fingerprint of their public part with
// any fmt verb, and error strings never contain key material. Comparisons of
// secret or authenticated values are constant-time. Destroy methods zero
// secret buffers where the Go runtime allows it.
package crypto
