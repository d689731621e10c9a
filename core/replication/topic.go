package replication

import (
	"encoding/hex"
	"fmt"

	"github.com/skein-p2p/skein/core/crypto"
)

// MinSecretSize is the smallest secret Topic accepts.
const MinSecretSize = 16

// TopicInfo is the HKDF info label of topic derivation.
const TopicInfo = "skein/v1/topic"

// Topic returns the pubsub topic of the logs shared under secret (a group
// secret): hex(HKDF-SHA256(secret, no salt, "skein/v1/topic")), 64 hex
// digits. It reveals nothing about the secret or the group's public key.
func Topic(secret []byte) (string, error) {
	if len(secret) < MinSecretSize {
		return "", fmt.Errorf("derive topic: %w: %d bytes, at least %d", ErrSecretTooShort, len(secret), MinSecretSize)
	}
	k, err := crypto.DeriveKey(secret, nil, TopicInfo)
	if err != nil {
		return "", fmt.Errorf("derive topic: %w", err)
	}
	return hex.EncodeToString(k[:]), nil
}
