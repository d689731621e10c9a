package replication

import (
	"encoding/base64"
	"fmt"

	"github.com/skein-p2p/skein/core/crypto"
)

// MinSecretSize is the smallest secret Topic accepts.
const MinSecretSize = 16

// TopicInfo is the HKDF info label of topic derivation.
const TopicInfo = "skein/v1/topic"

// TopicSize is the bytes of HKDF output a topic encodes (128 bits).
const TopicSize = 16

// Topic returns the pubsub topic of the logs shared under secret (a group
// secret): the first 16 bytes of HKDF-SHA256(secret, no salt,
// "skein/v1/topic") in unpadded base64url, 22 characters. It reveals
// nothing about the secret or the group's public key. Every pubsub
// message carries it, so it is short: 128 bits name a group's topic
// without collisions (it is a name, not a key).
//
// Nodes before this form used the 64 hex digits of all 32 bytes: the two
// never share a topic (a wire break, docs/protocol.md).
func Topic(secret []byte) (string, error) {
	if len(secret) < MinSecretSize {
		return "", fmt.Errorf("derive topic: %w: %d bytes, at least %d", ErrSecretTooShort, len(secret), MinSecretSize)
	}
	k, err := crypto.DeriveKey(secret, nil, TopicInfo)
	if err != nil {
		return "", fmt.Errorf("derive topic: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(k[:TopicSize]), nil
}
