package messenger

import (
	"errors"
	"fmt"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
)

// Keystore names under which `skein init` stores the account and device
// (cmd/node/init.go). A messenger that finds no group identity imports
// them, so the account init printed is the account the node uses.
const (
	InitAccountSeed = "account/ed25519-seed"
	InitDeviceKey   = "device/key"
	InitDeviceCert  = "device/certificate"
)

// loadIdentity returns the group identity in ks: the one saved before, else
// the keys `skein init` wrote (with a new contact key), else a new account.
// It reports whether it created a new account.
func loadIdentity(ks *crypto.Keystore) (*group.Identity, bool, error) {
	id, err := group.LoadIdentity(ks)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, crypto.ErrNotFound) {
		return nil, false, err
	}
	id, err = importInitKeys(ks)
	created := false
	switch {
	case errors.Is(err, crypto.ErrNotFound):
		if id, err = group.NewIdentity(); err != nil {
			return nil, false, err
		}
		created = true
	case err != nil:
		return nil, false, fmt.Errorf("import the keys of skein init: %w", err)
	}
	if err := group.SaveIdentity(ks, id); err != nil {
		return nil, false, err
	}
	return id, created, nil
}

func importInitKeys(ks *crypto.Keystore) (*group.Identity, error) {
	seed, err := ks.Get(InitAccountSeed)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	acct, err := crypto.NewSigningKeyFromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	db, err := ks.Get(InitDeviceKey)
	if err != nil {
		return nil, err
	}
	defer clear(db)
	dev, err := crypto.ParseDeviceKey(db)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	cb, err := ks.Get(InitDeviceCert)
	if err != nil {
		return nil, err
	}
	cert, err := crypto.ParseDeviceCertificate(cb)
	if err != nil {
		return nil, fmt.Errorf("device certificate: %w", err)
	}
	if err := crypto.VerifyDeviceCertificate(cert, acct.Public()); err != nil {
		return nil, fmt.Errorf("device certificate: %w", err)
	}
	if !cert.Device.Equal(dev.Public().Signing) {
		return nil, errors.New("device certificate: not for the device key")
	}
	ck, err := crypto.GenerateX25519Key()
	if err != nil {
		return nil, err
	}
	return &group.Identity{Account: acct, ContactKey: ck, Device: dev, Cert: cert}, nil
}
