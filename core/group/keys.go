package group

import (
	"crypto/ecdh"
	"encoding/binary"
	"fmt"

	"github.com/skein-p2p/skein/core/crypto"
)

// Labels and signature domains of the group layer (docs/protocol.md (Groups)).
const (
	domainGroupCreated = "skein/v1/group/created"
	domainDeviceAdded  = "skein/v1/group/device-added"

	labelHeaderKey    = "skein/v1/group/header-key"
	labelHeaderOnce   = "skein/v1/group/header-once"
	labelMetaSealKey  = "skein/v1/group/meta-seal-key"
	labelEnvelopeKey  = "skein/v1/group/envelope-key"
	adMeta            = "skein/v1/group/meta\x00"
	adEnvelopeEpoch   = "skein/v1/group/envelope-epoch\x00"
	labelMetaKey      = "skein/v1/group/meta-key"
	labelContactSeed  = "skein/v1/group/contact-seed"
	labelContactSec   = "skein/v1/group/contact-secret"
	labelAccountSeed  = "skein/v1/group/account-seed"
	labelAccountSec   = "skein/v1/group/account-secret"
	adHeader          = "skein/v1/group/header\x00"
	adBody            = "skein/v1/group/body\x00"
	adChainKey        = "skein/v1/group/chain-key\x00"
	adEpochSecret     = "skein/v1/group/epoch-secret\x00"
	adAppMetadata     = "skein/v1/group/app-metadata\x00"
	logIDPrefix       = "skein/v1/group/"
	metaLogSuffix     = "/meta"
	messagesLogSuffix = "/messages"
)

func cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func groupCreatedMessage(group crypto.PublicKey, kind Kind, accounts []crypto.PublicKey, writer crypto.PublicKey) []byte {
	b := cat(group[:], []byte{byte(kind), byte(len(accounts))})
	for _, a := range accounts {
		b = append(b, a[:]...)
	}
	return append(b, writer[:]...)
}

func deviceAddedMessage(group crypto.PublicKey, epoch EpochID, authType byte, inviteKey crypto.PublicKey, cert *crypto.DeviceCertificate) []byte {
	cb, _ := cert.MarshalBinary()
	b := cat(group[:], epoch[:], []byte{authType})
	if authType == AuthInvitation {
		b = append(b, inviteKey[:]...)
	}
	return append(b, cb...)
}

func headerKey(group crypto.PublicKey, secret *[32]byte) [32]byte {
	k, err := crypto.DeriveKey(secret[:], group[:], labelHeaderKey)
	if err != nil {
		panic(err) // HKDF with a 32-byte output cannot fail
	}
	return k
}

// headerOnceKey derives the key that seals the header of one message
// (envelope version 4) from the epoch's header key hk and the envelope's
// sealed epoch. The sealed epoch begins with the 24 random bytes of the
// suite's Seal (crypto.Suite: Seal is randomized), so the key is new for
// every message and SealOnce's fixed nonce is never used twice under it
// (docs/threat-model.md, "The header sealed once"). A writer that reused a
// sealed epoch would only expose its own headers, to members who can
// open them anyway.
func headerOnceKey(hk *[32]byte, sealedEpoch *[sealedEpochSize]byte) [32]byte {
	k, err := crypto.DeriveKey(hk[:], sealedEpoch[:], labelHeaderOnce)
	if err != nil {
		panic(err) // HKDF with a 32-byte output cannot fail
	}
	return k
}

func metaKey(group crypto.PublicKey, secret *[32]byte) [32]byte {
	k, err := crypto.DeriveKey(secret[:], group[:], labelMetaKey)
	if err != nil {
		panic(err)
	}
	return k
}

func headerAD(group crypto.PublicKey, epoch EpochID, writer crypto.PublicKey) []byte {
	return cat([]byte(adHeader), group[:], epoch[:], writer[:])
}

func bodyAD(group crypto.PublicKey, epoch EpochID, writer crypto.PublicKey, index uint64) []byte {
	return cat([]byte(adBody), group[:], epoch[:], writer[:], u64(index))
}

func chainKeyAD(group crypto.PublicKey, epoch EpochID, sender, recipient crypto.PublicKey) []byte {
	return cat([]byte(adChainKey), group[:], epoch[:], sender[:], recipient[:])
}

func epochSecretAD(group crypto.PublicKey, epoch EpochID, sender, recipient crypto.PublicKey) []byte {
	return cat([]byte(adEpochSecret), group[:], epoch[:], sender[:], recipient[:])
}

func appMetadataAD(group crypto.PublicKey, epoch EpochID, writer crypto.PublicKey) []byte {
	return cat([]byte(adAppMetadata), group[:], epoch[:], writer[:])
}

// contactGroupKeys derives the contact group of two accounts: the group's
// Ed25519 seed and its genesis secret. Both sides compute the same values:
// ikm = X25519(own contact key, peer contact key), salt = the two account
// keys in ascending byte order, then the two contact keys in ascending
// order.
func contactGroupKeys(own *crypto.X25519PrivateKey, ownAccount crypto.PublicKey, peer crypto.X25519PublicKey, peerAccount crypto.PublicKey) (seed, secret [32]byte, err error) {
	priv, err := ecdh.X25519().NewPrivateKey(own.Bytes())
	if err != nil {
		return seed, secret, fmt.Errorf("contact key: %w", err)
	}
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return seed, secret, fmt.Errorf("peer contact key: %w", err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return seed, secret, fmt.Errorf("contact key agreement: %w", err)
	}
	defer clear(shared)
	a, b := ownAccount, peerAccount
	if string(b[:]) < string(a[:]) {
		a, b = b, a
	}
	x, y := own.Public(), peer
	if string(y[:]) < string(x[:]) {
		x, y = y, x
	}
	salt := cat(a[:], b[:], x[:], y[:])
	if seed, err = crypto.DeriveKey(shared, salt, labelContactSeed); err != nil {
		return seed, secret, err
	}
	secret, err = crypto.DeriveKey(shared, salt, labelContactSec)
	return seed, secret, err
}

// accountGroupKeys derives an account's own group from its signing seed.
func accountGroupKeys(account *crypto.SigningKey) (seed, secret [32]byte, err error) {
	s := account.Seed()
	defer clear(s)
	pub := account.Public()
	if seed, err = crypto.DeriveKey(s, pub[:], labelAccountSeed); err != nil {
		return seed, secret, err
	}
	secret, err = crypto.DeriveKey(s, pub[:], labelAccountSec)
	return seed, secret, err
}

// logKeys are the keys the group derives from its replication key to seal
// what its log entries carry: the metadata payloads and the envelopes'
// epochs. Members and replication nodes hold them; whoever holds only the
// blocks does not.
type logKeys struct {
	suite    crypto.Suite
	meta     [32]byte
	envelope [32]byte
}

func deriveLogKeys(suite crypto.Suite, group crypto.PublicKey, replKey *[32]byte) (*logKeys, error) {
	k := logKeys{suite: suite}
	var err error
	if k.meta, err = crypto.DeriveKey(replKey[:], group[:], labelMetaSealKey); err != nil {
		return nil, err
	}
	if k.envelope, err = crypto.DeriveKey(replKey[:], group[:], labelEnvelopeKey); err != nil {
		return nil, err
	}
	return &k, nil
}

func metaAD(group crypto.PublicKey, writer crypto.PublicKey) []byte {
	return cat([]byte(adMeta), group[:], []byte(MetaLogID(group)), writer[:])
}

// sealMeta seals a metadata payload's plaintext for writer's entry:
// version || Seal(metaKey, inner, ad).
func sealMeta(k *logKeys, group, writer crypto.PublicKey, p *MetaPayload) ([]byte, error) {
	inner, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer clear(inner)
	sealed, err := k.suite.Seal(&k.meta, inner, metaAD(group, writer))
	if err != nil {
		return nil, err
	}
	return append([]byte{payloadVersion}, sealed...), nil
}

// openMeta opens and decodes the payload of a metadata entry by writer.
// Errors wrap ErrMalformedPayload: a payload that does not open was sealed
// for another group, by another writer, or altered.
func openMeta(k *logKeys, group, writer crypto.PublicKey, b []byte) (*MetaPayload, error) {
	switch {
	case len(b) == 0:
		return nil, fmt.Errorf("%w: empty metadata payload", ErrMalformedPayload)
	case b[0] != payloadVersion:
		return nil, fmt.Errorf("%w: metadata payload version %d, want %d", ErrMalformedPayload, b[0], payloadVersion)
	}
	inner, err := k.suite.Open(&k.meta, b[1:], metaAD(group, writer))
	if err != nil {
		return nil, fmt.Errorf("%w: metadata payload does not open under this group's key: %v", ErrMalformedPayload, err)
	}
	defer clear(inner)
	return DecodeMetaPayload(inner)
}

func envelopeEpochAD(group, writer crypto.PublicKey) []byte {
	return cat([]byte(adEnvelopeEpoch), group[:], []byte(MessagesLogID(group)), writer[:])
}

// sealEpoch seals the epoch of writer's message entry.
func sealEpoch(k *logKeys, group, writer crypto.PublicKey, e EpochID) ([sealedEpochSize]byte, error) {
	var out [sealedEpochSize]byte
	sealed, err := k.suite.Seal(&k.envelope, e[:], envelopeEpochAD(group, writer))
	if err != nil {
		return out, err
	}
	copy(out[:], sealed)
	return out, nil
}

// openEpoch opens an envelope's epoch (errors wrap ErrMalformedPayload).
func openEpoch(k *logKeys, group, writer crypto.PublicKey, env *Envelope) (EpochID, error) {
	var e EpochID
	pt, err := k.suite.Open(&k.envelope, env.SealedEpoch[:], envelopeEpochAD(group, writer))
	if err != nil || len(pt) != EpochIDSize {
		return e, fmt.Errorf("%w: the envelope's epoch does not open under this group's key", ErrMalformedPayload)
	}
	copy(e[:], pt)
	return e, nil
}
