package messenger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/replication"
)

// Pubsub announcements are core/replication Announcements, one per log
// (channels "meta" and "messages" of the group's topic). Head-exchange
// answers (direct requests) and want messages use the replicator's own
// format: version (1), group id (32 bytes), then the metadata heads and the
// message heads, each a uvarint count followed by uvarint-length-prefixed
// binary CIDs.

const (
	headsVersion = 1
	// wantTag starts a want message: version byte 2, then the group id. A
	// joiner on a network without direct requests publishes it; members
	// answer by announcing their heads.
	wantTag = 2
	// MaxAnnouncedHeads bounds the heads of one log in one announcement.
	MaxAnnouncedHeads = 256
	maxCIDLen         = 128
	// HeadsProtocol is the direct request protocol of head exchange.
	HeadsProtocol = "/skein/messenger/heads/1"
	topicDomain   = "skein/v1/messenger/topic\x00"
)

// Channels of a group's two logs in core/replication announcements.
const (
	metaChannel     = "meta"
	messagesChannel = "messages"
)

// encodeAnnouncement is a core/replication Announcement (no inline
// entries) of one log's heads: the pubsub format the network plugin
// validates.
func encodeAnnouncement(topic, channel string, heads []cid.Cid, digest bool) ([]byte, error) {
	sorted := slices.Clone(heads)
	slices.SortFunc(sorted, func(a, b cid.Cid) int { return strings.Compare(a.KeyString(), b.KeyString()) })
	sorted = slices.CompactFunc(sorted, func(a, b cid.Cid) bool { return a.Equals(b) })
	if len(sorted) > replication.MaxHeads {
		sorted = sorted[:replication.MaxHeads]
	}
	a := replication.Announcement{Digest: digest, Log: replication.LogIDFor(topic, channel), Heads: sorted}
	return a.MarshalBinary()
}

// decodeAnnouncement decodes a pubsub message on a group's topic into the
// heads of the log it names (the other log's heads left empty).
func decodeAnnouncement(topic string, b []byte) (group.Heads, error) {
	a, err := replication.DecodeAnnouncement(b)
	if err != nil {
		return group.Heads{}, err
	}
	switch a.Log {
	case replication.LogIDFor(topic, metaChannel):
		return group.Heads{Meta: a.Heads}, nil
	case replication.LogIDFor(topic, messagesChannel):
		return group.Heads{Messages: a.Heads}, nil
	}
	return group.Heads{}, fmt.Errorf("%w: announcement of a log that is not this group's", ErrMalformedHeads)
}

// mergeHeads returns old with the logs h names replaced by h's heads.
func mergeHeads(old, h group.Heads) group.Heads {
	if len(h.Meta) > 0 {
		old.Meta = h.Meta
	}
	if len(h.Messages) > 0 {
		old.Messages = h.Messages
	}
	return old
}

// ErrMalformedHeads: an announcement or head-exchange answer does not
// decode.
var ErrMalformedHeads = errors.New("malformed heads message")

// TopicFor returns the pubsub topic the built-in replicator uses for a
// group: a hash of the group id, so the topic name does not show the key.
func TopicFor(id crypto.PublicKey) string {
	h := sha256.Sum256(append([]byte(topicDomain), id[:]...))
	return "/skein/g/1/" + hex.EncodeToString(h[:16])
}

func encodeWant(id crypto.PublicKey) []byte { return append([]byte{wantTag}, id[:]...) }

// isWant reports whether b is a want message for group id.
func isWant(b []byte, id crypto.PublicKey) bool {
	return len(b) == 1+len(id) && b[0] == wantTag && crypto.PublicKey(b[1:]) == id
}

func encodeHeads(id crypto.PublicKey, h group.Heads) []byte {
	b := []byte{headsVersion}
	b = append(b, id[:]...)
	for _, list := range [][]cid.Cid{h.Meta, h.Messages} {
		b = binary.AppendUvarint(b, uint64(len(list)))
		for _, c := range list {
			cb := c.Bytes()
			b = binary.AppendUvarint(b, uint64(len(cb)))
			b = append(b, cb...)
		}
	}
	return b
}

// DecodeHeads decodes an announcement: the group it is for and its heads.
func DecodeHeads(b []byte) (crypto.PublicKey, group.Heads, error) {
	var id crypto.PublicKey
	var h group.Heads
	if len(b) < 1+len(id) {
		return id, h, fmt.Errorf("%w: %d bytes", ErrMalformedHeads, len(b))
	}
	if b[0] != headsVersion {
		return id, h, fmt.Errorf("%w: version %d", ErrMalformedHeads, b[0])
	}
	copy(id[:], b[1:])
	b = b[1+len(id):]
	lists := [2][]cid.Cid{}
	for i := range lists {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > MaxAnnouncedHeads {
			return id, h, fmt.Errorf("%w: bad head count", ErrMalformedHeads)
		}
		b = b[k:]
		for range n {
			l, k := binary.Uvarint(b)
			if k <= 0 || l == 0 || l > maxCIDLen || uint64(len(b)-k) < l {
				return id, h, fmt.Errorf("%w: bad cid length", ErrMalformedHeads)
			}
			c, err := cid.Cast(b[k : k+int(l)])
			if err != nil {
				return id, h, fmt.Errorf("%w: %v", ErrMalformedHeads, err)
			}
			lists[i] = append(lists[i], c)
			b = b[k+int(l):]
		}
	}
	if len(b) != 0 {
		return id, h, fmt.Errorf("%w: %d trailing bytes", ErrMalformedHeads, len(b))
	}
	h.Meta, h.Messages = lists[0], lists[1]
	return id, h, nil
}

func sameHeads(a, b group.Heads) bool {
	eq := func(x, y []cid.Cid) bool {
		if len(x) != len(y) {
			return false
		}
		set := make(map[cid.Cid]bool, len(x))
		for _, c := range x {
			set[c] = true
		}
		for _, c := range y {
			if !set[c] {
				return false
			}
		}
		return true
	}
	return eq(a.Meta, b.Meta) && eq(a.Messages, b.Messages)
}
