package crypto

import (
	"encoding/binary"
	"fmt"
	"time"
)

// DomainDeviceCert is the signature domain of device certificates.
const DomainDeviceCert = "skein/v1/device-cert"

// DeviceCertificateSize is the length of an encoded DeviceCertificate.
const DeviceCertificateSize = 1 + 3*32 + 8 + SignatureSize

const deviceCertVersion = 1

// DeviceCertificate is an account's statement that a device belongs to it:
// the account key signs the device's Ed25519 and X25519 public keys and the
// creation time. Encoding (DeviceCertificateSize bytes):
//
//	version(0x01) || account(32) || device(32) || device X25519(32) ||
//	created(int64 big-endian, Unix seconds) || signature(64)
//
// The signature is Ed25519 by the account over
// "skein/v1/device-cert" || 0x00 || everything before the signature.
type DeviceCertificate struct {
	// Account is the certifying account's public key.
	Account PublicKey
	// Device is the certified device's Ed25519 public key.
	Device PublicKey
	// DeviceX25519 is the certified device's X25519 public key.
	DeviceX25519 X25519PublicKey
	// Created is when the certificate was issued, at one-second precision.
	Created time.Time
	// Signature is the account's signature.
	Signature [SignatureSize]byte
}

// IssueDeviceCertificate signs a certificate for device with the account key.
// created is truncated to whole seconds (UTC).
func IssueDeviceCertificate(account *SigningKey, device DevicePublic, created time.Time) (*DeviceCertificate, error) {
	c := &DeviceCertificate{
		Account:      account.Public(),
		Device:       device.Signing,
		DeviceX25519: device.X25519,
		Created:      time.Unix(created.Unix(), 0).UTC(),
	}
	sig, err := account.Sign(DomainDeviceCert, c.signedPart())
	if err != nil {
		return nil, fmt.Errorf("issue device certificate: %w", err)
	}
	copy(c.Signature[:], sig)
	return c, nil
}

// VerifyDeviceCertificate checks that c was issued by account and that its
// signature is valid. It returns an error wrapping ErrNotCertified when the
// certificate names another account, ErrInvalidSignature when the signature
// does not verify, and ErrMalformed for a nil certificate.
func VerifyDeviceCertificate(c *DeviceCertificate, account PublicKey) error {
	if c == nil {
		return fmt.Errorf("verify device certificate: %w: nil", ErrMalformed)
	}
	if !c.Account.Equal(account) {
		return fmt.Errorf("verify device certificate for device %s: issued by %s, want %s: %w",
			c.Device.Fingerprint(), c.Account.Fingerprint(), account.Fingerprint(), ErrNotCertified)
	}
	if err := account.Verify(DomainDeviceCert, c.signedPart(), c.Signature[:]); err != nil {
		return fmt.Errorf("verify device certificate for device %s: %w", c.Device.Fingerprint(), err)
	}
	return nil
}

// DevicePublic returns the certified device public keys.
func (c *DeviceCertificate) DevicePublic() DevicePublic {
	return DevicePublic{Signing: c.Device, X25519: c.DeviceX25519}
}

// MarshalBinary encodes the certificate (DeviceCertificateSize bytes). It
// never fails.
func (c *DeviceCertificate) MarshalBinary() ([]byte, error) {
	out := c.signedPart()
	return append(out, c.Signature[:]...), nil
}

// UnmarshalBinary decodes a certificate. It checks only the structure
// (length, version); call VerifyDeviceCertificate before trusting it.
func (c *DeviceCertificate) UnmarshalBinary(b []byte) error {
	d, err := ParseDeviceCertificate(b)
	if err != nil {
		return err
	}
	*c = *d
	return nil
}

// ParseDeviceCertificate decodes a certificate. It checks only the structure
// (length, version); call VerifyDeviceCertificate before trusting it. The
// result may be shared with other callers (SetCertificateInternSize): do
// not modify it.
func ParseDeviceCertificate(b []byte) (*DeviceCertificate, error) {
	if len(b) != DeviceCertificateSize {
		return nil, fmt.Errorf("parse device certificate: %w: length %d, want %d", ErrMalformed, len(b), DeviceCertificateSize)
	}
	if b[0] != deviceCertVersion {
		return nil, fmt.Errorf("parse device certificate: %w: version %d", ErrMalformed, b[0])
	}
	if c := sharedCertificate(b); c != nil {
		return c, nil
	}
	c := &DeviceCertificate{}
	p := b[1:]
	copy(c.Account[:], p[:32])
	copy(c.Device[:], p[32:64])
	copy(c.DeviceX25519[:], p[64:96])
	secs := int64(binary.BigEndian.Uint64(p[96:104]))
	c.Created = time.Unix(secs, 0).UTC()
	copy(c.Signature[:], p[104:])
	return shareCertificate(b, c), nil
}

func (c *DeviceCertificate) signedPart() []byte {
	out := make([]byte, 0, DeviceCertificateSize)
	out = append(out, deviceCertVersion)
	out = append(out, c.Account[:]...)
	out = append(out, c.Device[:]...)
	out = append(out, c.DeviceX25519[:]...)
	return binary.BigEndian.AppendUint64(out, uint64(c.Created.Unix()))
}
