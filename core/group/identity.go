package group

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// Kind is a group kind.
type Kind uint8

// Group kinds.
const (
	// KindAccount groups the devices of one account.
	KindAccount Kind = 1
	// KindContact is a two-account group both sides derive from their
	// account contact keys.
	KindContact Kind = 2
	// KindMulti is a group of any number of accounts joined by invitation.
	KindMulti Kind = 3
)

func (k Kind) valid() bool { return k >= KindAccount && k <= KindMulti }

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindAccount:
		return "account"
	case KindContact:
		return "contact"
	case KindMulti:
		return "multi-member"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// EpochIDSize is the length of an epoch id.
const EpochIDSize = 16

// EpochID names one epoch of a group. The genesis epoch is the zero id;
// every rekey picks a fresh random id.
type EpochID [EpochIDSize]byte

// GenesisEpoch is the id of a group's first epoch.
var GenesisEpoch EpochID

// String returns the id as hex.
func (e EpochID) String() string { return fmt.Sprintf("%x", e[:]) }

// Keystore names under which SaveIdentity keeps a device's state.
const (
	keyAccount    = "skein/account"
	keyContact    = "skein/contact-x25519"
	keyDevice     = "skein/device"
	keyDeviceCert = "skein/device-cert"
)

// Identity is one device's state: its account (public key, and the private
// key on a device that holds it), the account's contact key-agreement key,
// the device key and the device certificate the account issued. It lives in
// a crypto.Keystore (SaveIdentity, LoadIdentity).
type Identity struct {
	// Account is the account signing key; nil on a device that was certified
	// elsewhere and does not hold it (such a device cannot create contact
	// requests).
	Account *crypto.SigningKey
	// ContactKey is the account's X25519 contact key (shared by all the
	// account's devices); may be nil on devices that make no contacts.
	ContactKey *crypto.X25519PrivateKey
	// Device is the device key.
	Device *crypto.DeviceKey
	// Cert is the device's certificate, issued by the account.
	Cert *crypto.DeviceCertificate
}

// NewIdentity generates a new account, contact key and device, and
// certifies the device.
func NewIdentity() (*Identity, error) {
	acct, err := crypto.GenerateSigningKey()
	if err != nil {
		return nil, fmt.Errorf("new identity: %w", err)
	}
	ck, err := crypto.GenerateX25519Key()
	if err != nil {
		return nil, fmt.Errorf("new identity: %w", err)
	}
	return NewDevice(acct, ck)
}

// NewDevice generates a new device of an existing account and certifies it.
func NewDevice(account *crypto.SigningKey, contact *crypto.X25519PrivateKey) (*Identity, error) {
	dev, err := crypto.GenerateDeviceKey()
	if err != nil {
		return nil, fmt.Errorf("new device: %w", err)
	}
	cert, err := crypto.IssueDeviceCertificate(account, dev.Public(), time.Now())
	if err != nil {
		return nil, fmt.Errorf("new device: %w", err)
	}
	return &Identity{Account: account, ContactKey: contact, Device: dev, Cert: cert}, nil
}

// AccountKey returns the account public key (from the certificate).
func (id *Identity) AccountKey() crypto.PublicKey { return id.Cert.Account }

// DeviceKey returns the device's Ed25519 public key.
func (id *Identity) DeviceKey() crypto.PublicKey { return id.Cert.Device }

func (id *Identity) check() error {
	if id == nil || id.Device == nil || id.Cert == nil {
		return errors.New("identity needs a device key and a certificate")
	}
	if !id.Cert.Device.Equal(id.Device.Public().Signing) || id.Cert.DeviceX25519 != id.Device.Public().X25519 {
		return fmt.Errorf("identity: %w: certificate is for another device", ErrNotCertified)
	}
	if err := crypto.VerifyDeviceCertificate(id.Cert, id.Cert.Account); err != nil {
		return fmt.Errorf("identity: %w: %v", ErrNotCertified, err)
	}
	if id.Account != nil && !id.Account.Public().Equal(id.Cert.Account) {
		return fmt.Errorf("identity: %w: certificate issued by another account", ErrNotCertified)
	}
	return nil
}

// signer adapts the device key to core/log's Signer (log entries are signed
// under the log's own domain, so the raw Ed25519 key is needed).
func (id *Identity) signer() log.Signer {
	seed := id.Device.Signing().Seed()
	defer clear(seed)
	return log.NewKeySigner(ed25519.NewKeyFromSeed(seed))
}

// String prints fingerprints only.
func (id *Identity) String() string {
	if id == nil || id.Cert == nil {
		return "Identity(<nil>)"
	}
	return fmt.Sprintf("Identity(account %s device %s)", id.Cert.Account.Fingerprint(), id.Cert.Device.Fingerprint())
}

// SaveIdentity stores the identity in ks, every private part sealed at rest
// by the keystore.
func SaveIdentity(ks *crypto.Keystore, id *Identity) error {
	if err := id.check(); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	dk, _ := id.Device.MarshalBinary()
	defer clear(dk)
	if err := ks.Put(keyDevice, dk); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	cb, _ := id.Cert.MarshalBinary()
	if err := ks.Put(keyDeviceCert, cb); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if id.Account != nil {
		s := id.Account.Seed()
		err := ks.Put(keyAccount, s)
		clear(s)
		if err != nil {
			return fmt.Errorf("save identity: %w", err)
		}
	}
	if id.ContactKey != nil {
		s := id.ContactKey.Bytes()
		err := ks.Put(keyContact, s)
		clear(s)
		if err != nil {
			return fmt.Errorf("save identity: %w", err)
		}
	}
	return nil
}

// LoadIdentity reads the identity SaveIdentity stored and checks that the
// certificate matches the device key and verifies under its account.
func LoadIdentity(ks *crypto.Keystore) (*Identity, error) {
	dk, err := ks.Get(keyDevice)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	defer clear(dk)
	dev, err := crypto.ParseDeviceKey(dk)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	cb, err := ks.Get(keyDeviceCert)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	cert, err := crypto.ParseDeviceCertificate(cb)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	id := &Identity{Device: dev, Cert: cert}
	if s, err := ks.Get(keyAccount); err == nil {
		id.Account, err = crypto.NewSigningKeyFromSeed(s)
		clear(s)
		if err != nil {
			return nil, fmt.Errorf("load identity: account: %w", err)
		}
	} else if !errors.Is(err, crypto.ErrNotFound) {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	if s, err := ks.Get(keyContact); err == nil {
		id.ContactKey, err = crypto.NewX25519PrivateKey(s)
		clear(s)
		if err != nil {
			return nil, fmt.Errorf("load identity: contact key: %w", err)
		}
	} else if !errors.Is(err, crypto.ErrNotFound) {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	if err := id.check(); err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	return id, nil
}
