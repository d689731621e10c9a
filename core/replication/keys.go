package replication

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/skein-p2p/skein/core/crypto"
)

// HKDF info labels of the keys derived from a topic secret (a group's
// replication key). Each purpose has its own key; none is ever sent.
const (
	// ProofKeyInfo derives the MAC key of the membership proof
	// (ProofProtocol).
	ProofKeyInfo = "skein/v1/replication/proof-key"
	// SealKeyInfo derives the key that seals announcements and digests.
	SealKeyInfo = "skein/v1/replication/announce-seal"
)

// TopicKeys are what a replicator derives from a topic secret: the topic,
// the key of the membership proof and the key that seals the topic's
// pubsub messages. They are the same for every holder of the secret.
type TopicKeys struct {
	// Topic is the pubsub topic (see Topic).
	Topic string
	proof [crypto.KeySize]byte
	seal  [crypto.KeySize]byte
	suite crypto.Suite // nil: crypto.DefaultSuite()
}

// WithSuite returns a copy of k that seals and opens with suite s (which
// must add crypto.SealOverhead, as the default does: see
// crypto.CheckSuiteSizes). Every replica of a topic must use the same.
func (k *TopicKeys) WithSuite(s crypto.Suite) *TopicKeys {
	c := *k
	c.suite = s
	return &c
}

func (k *TopicKeys) sealer() crypto.Suite {
	if k.suite == nil {
		return crypto.DefaultSuite()
	}
	return k.suite
}

// DeriveTopicKeys derives the topic and the keys of secret.
func DeriveTopicKeys(secret []byte) (*TopicKeys, error) {
	topic, err := Topic(secret)
	if err != nil {
		return nil, err
	}
	k := &TopicKeys{Topic: topic}
	if k.proof, err = crypto.DeriveKey(secret, nil, ProofKeyInfo); err != nil {
		return nil, fmt.Errorf("derive proof key: %w", err)
	}
	if k.seal, err = crypto.DeriveKey(secret, nil, SealKeyInfo); err != nil {
		return nil, fmt.Errorf("derive seal key: %w", err)
	}
	return k, nil
}

// sealPad: the plaintext of a sealed announcement is padded to a multiple
// of sealPad bytes, so that its size tells an observer little about the
// entries it carries. 16 (64 before, 256 before that): every byte of
// padding goes to every mesh peer with every message, while an observer
// of the connection sees Noise frames of the exact size anyway and a
// holder of an entry's CID the entry's exact size (docs/replication.md,
// "Sealed announcements and closed topics").
const sealPad = 16

// sealedOverhead is what Seal adds: a 24-byte nonce and a 16-byte tag.
const sealedOverhead = 24 + 16

// MaxSealedSize is the largest sealed announcement on the wire.
const MaxSealedSize = 2 + (MaxAnnouncementSize/sealPad+1)*sealPad + sealedOverhead

// sealAD is the associated data of a sealed announcement: its header and
// the topic, so a message sealed for one topic never opens on another.
func sealAD(topic string) []byte {
	return append([]byte{WireVersion, kindSealed}, topic...)
}

// Seal encodes a (an announcement or a digest) and seals it for the topic:
// version, kindSealed, then the suite's Seal (XChaCha20-Poly1305 by
// default, see WithSuite) under the topic's seal key
// of uvarint(length) || encoding || zero padding to a multiple of sealPad
// (16) bytes. Only a holder of the topic secret can open it or tell what it
// announces.
func (k *TopicKeys) Seal(a *Announcement) ([]byte, error) {
	plain, err := a.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return k.sealBytes(plain)
}

func (k *TopicKeys) sealBytes(plain []byte) ([]byte, error) {
	inner := binary.AppendUvarint(nil, uint64(len(plain)))
	inner = append(inner, plain...)
	if r := len(inner) % sealPad; r != 0 {
		inner = append(inner, make([]byte, sealPad-r)...)
	}
	box, err := k.sealer().Seal(&k.seal, inner, sealAD(k.Topic))
	if err != nil {
		return nil, fmt.Errorf("seal announcement: %w", err)
	}
	return append([]byte{WireVersion, kindSealed}, box...), nil
}

// ErrNotSealedForTopic: a pubsub message is not a sealed announcement that
// opens under the topic's key (a stranger's bytes, another topic's, or
// tampered with).
var ErrNotSealedForTopic = errors.New("not sealed for this topic")

// Open opens a sealed announcement of the topic and decodes it strictly.
// A message that does not open (wrong key, wrong topic, tampered) is an
// error wrapping ErrNotSealedForTopic; one that opens but is not a
// canonical announcement, an error wrapping ErrMalformedMessage.
func (k *TopicKeys) Open(data []byte) (*Announcement, error) {
	if len(data) < 2+sealedOverhead || len(data) > MaxSealedSize || data[0] != WireVersion || data[1] != kindSealed {
		return nil, fmt.Errorf("open announcement: %w", ErrNotSealedForTopic)
	}
	inner, err := k.sealer().Open(&k.seal, data[2:], sealAD(k.Topic))
	if err != nil {
		return nil, fmt.Errorf("open announcement: %w", ErrNotSealedForTopic)
	}
	r := &reader{b: inner}
	n := r.uvarint("sealed length", MaxAnnouncementSize)
	plain := r.take("sealed announcement", int(n))
	if r.err == nil {
		for _, c := range r.b {
			if c != 0 {
				r.fail("non-zero padding")
				break
			}
		}
		if len(inner)%sealPad != 0 || len(r.b) >= sealPad {
			r.fail("padding of %d bytes", len(r.b))
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("open announcement: %w", r.err)
	}
	return DecodeAnnouncement(plain)
}

// checkSealedFrame checks what a relay without the topic's key can check
// of a sealed announcement: its header and size.
func checkSealedFrame(data []byte) error {
	if len(data) < 2+sealedOverhead || len(data) > MaxSealedSize {
		return fmt.Errorf("%w: sealed announcement of %d bytes", ErrMalformedMessage, len(data))
	}
	if data[0] != WireVersion || data[1] != kindSealed {
		return fmt.Errorf("%w: not a sealed announcement", ErrMalformedMessage)
	}
	if (len(data)-2-sealedOverhead)%sealPad != 0 {
		return fmt.Errorf("%w: sealed announcement not padded", ErrMalformedMessage)
	}
	return nil
}
