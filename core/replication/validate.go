package replication

import (
	"fmt"

	"github.com/skein-p2p/skein/core/log"
)

// ValidateAnnouncement checks a pubsub message the way every honest relay
// can, without knowing the log it names: it must decode strictly
// (DecodeAnnouncement), and every inline entry must be a well-formed entry
// block (log.DecodeBlock: canonical encoding, bytes hashing to its CID)
// whose signature verifies (log.Entry.VerifySignature). A network plugin
// calls it from its pubsub validator so that it never forwards or delivers
// what fails it; the error wraps ErrMalformedMessage, and for an inline
// entry also log.ErrMalformed, log.ErrHashMismatch or log.ErrBadSignature.
//
// What a relay cannot check (write access, the log id, size and clock
// limits, entries fetched later) is left to the log's Join.
//
// A sealed announcement (kindSealed, what replicators publish) can be
// opened only with the topic's key: without it, only its frame (header,
// size, padding) is checked, and the replicator's own validator
// (sdk.TopicValidator) opens and checks the rest.
func ValidateAnnouncement(data []byte) error {
	if len(data) >= 2 && data[1] == kindSealed {
		return checkSealedFrame(data)
	}
	a, err := DecodeAnnouncement(data)
	if err != nil {
		return err
	}
	for i, b := range a.Inline {
		if err := validInline(b); err != nil {
			return fmt.Errorf("validate announcement: %w: inline entry %d: %w", ErrMalformedMessage, i, err)
		}
	}
	return nil
}

// validInline checks one inline entry block: decodes under the CID of its
// bytes and verifies its signature.
func validInline(b []byte) error {
	e, err := log.DecodeBlock(blockCID(b), b)
	if err != nil {
		return err
	}
	return e.VerifySignature()
}
