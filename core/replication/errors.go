package replication

import (
	"errors"

	"github.com/skein-p2p/skein/core/log"
)

// Sentinel errors.
var (
	// ErrMalformedMessage: a replication message (announcement, digest,
	// head-exchange request or response) is not the canonical encoding of a
	// well-formed message. A head-exchange peer that sends one is cut off;
	// a pubsub sender only under WithPubsubValidated (else it is dropped).
	ErrMalformedMessage = errors.New("malformed replication message")
	// ErrNotStarted: the Replicator was not started (or was closed).
	ErrNotStarted = errors.New("replicator not started")
	// ErrDuplicateLog: a log with the same wire id (same topic and channel)
	// is already replicated.
	ErrDuplicateLog = errors.New("log already replicated")
	// ErrUnknownLog: no log with that id is replicated.
	ErrUnknownLog = errors.New("log not replicated")
	// ErrSecretTooShort: a topic secret has fewer than MinSecretSize bytes.
	ErrSecretTooShort = errors.New("topic secret too short")
	// ErrNoDirect: the network has no sdk.DirectMessenger, so heads cannot
	// be exchanged directly.
	ErrNoDirect = errors.New("network cannot send direct requests")
	// ErrBlockedPeer: the peer is cut off.
	ErrBlockedPeer = errors.New("peer is cut off")
)

// Misbehaviour reports whether a log rejection proves that the peer which
// named the entry misbehaved: an honest replica only announces heads it
// accepted, and an entry's bytes are bound to its CID, so an entry that is
// malformed, forged, of another log, too large, or with a bad clock or a
// cycle can only come from a faulty or malicious peer. A missing block
// (the network may be slow) and a writer the access controller refused
// (membership views can differ for a moment) are not proof, and neither is
// depending on a rejected entry (the rejection itself is counted).
func Misbehaviour(err error) bool {
	for _, e := range []error{log.ErrMalformed, log.ErrHashMismatch, log.ErrBadSignature,
		log.ErrWrongLog, log.ErrTooLarge, log.ErrClock, log.ErrCycle} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
