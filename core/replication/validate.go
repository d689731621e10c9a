package replication

import (
	"fmt"
	"sync"

	"github.com/ipfs/go-cid"

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
// bytes and verifies its signature. A block this process vouched for (its
// own replicas announce it: it signed or verified it) passes on its hash
// alone: the same bytes passed once.
func validInline(b []byte) error {
	c := blockCID(b)
	if vouched.has(c) {
		return nil
	}
	e, err := log.DecodeBlock(c, b)
	if err != nil {
		return err
	}
	if err := e.VerifySignature(); err != nil {
		return err
	}
	verifiedInline.add(c)
	return nil
}

// verifiedInline holds the CIDs of the inline entry blocks whose signature
// the pubsub validator verified lately: the join of the announcement that
// carried them does not verify them again (log.Verified).
var verifiedInline = newCIDSet(1 << 14)

// vouched holds the CIDs of the entry blocks this process's replicas
// announced inline: each was signed here or verified by a join. With the
// network linked in, its pubsub validator runs ValidateAnnouncement on
// this node's own announcements too; it need not verify again what this
// node just signed or verified (during a catch-up, a quarter of the CPU
// went there).
var vouched = newCIDSet(1 << 14)

// cidSet is a bounded set of CIDs: past max, the older half is forgotten.
type cidSet struct {
	mu       sync.Mutex
	max      int
	cur, old map[string]struct{}
}

func newCIDSet(max int) *cidSet {
	return &cidSet{max: max, cur: map[string]struct{}{}}
}

func (s *cidSet) add(c cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur[c.KeyString()] = struct{}{}
	if len(s.cur) >= s.max/2 {
		s.old, s.cur = s.cur, make(map[string]struct{}, s.max/2)
	}
}

func (s *cidSet) has(c cid.Cid) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.cur[c.KeyString()]
	if !ok {
		_, ok = s.old[c.KeyString()]
	}
	return ok
}
