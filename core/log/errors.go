package log

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
)

// Sentinel errors. Every rejection reason wraps exactly one of them, so
// callers test with errors.Is.
var (
	// ErrNotFound: the block, key or entry does not exist. An adapter from
	// sdk.Store or sdk.Network maps sdk.ErrNotFound to it (e.g. with
	// fmt.Errorf("%w: %w", log.ErrNotFound, err)).
	ErrNotFound = errors.New("not found")
	// ErrMalformed: the bytes are not the canonical dag-cbor encoding of a
	// well-formed entry (unknown or missing field, wrong type, non-canonical
	// form, bad key or signature length, unsorted or duplicate links, wrong
	// version, bad CID format).
	ErrMalformed = errors.New("malformed entry")
	// ErrHashMismatch: the block's bytes do not hash to the CID it was
	// requested under.
	ErrHashMismatch = errors.New("block does not match its cid")
	// ErrBadSignature: the signature does not verify under the writer key.
	ErrBadSignature = errors.New("bad entry signature")
	// ErrNotAllowed: the AccessController refused the writer.
	ErrNotAllowed = errors.New("writer not allowed")
	// ErrNotYetAllowed may be wrapped by an AccessController's refusal that
	// state arriving later can lift (a group message naming an epoch, or
	// written by a device, that the group's membership log has not
	// delivered here yet). The entry is refused all the same; a
	// replicator retries it soon instead of remembering the refusal.
	ErrNotYetAllowed = errors.New("writer not allowed yet")
	// ErrTooLarge: the entry exceeds a size limit (bytes, next fan-in, refs).
	ErrTooLarge = errors.New("entry too large")
	// ErrClock: the Lamport time is not greater than every next entry's
	// time, or jumps further ahead than the configured limit.
	ErrClock = errors.New("bad entry clock")
	// ErrMissingBlock: a block named under next could not be fetched.
	ErrMissingBlock = errors.New("missing block")
	// ErrWrongLog: the entry belongs to another log id.
	ErrWrongLog = errors.New("entry of another log")
	// ErrCycle: the next links form a cycle.
	ErrCycle = errors.New("cycle under next")
	// ErrBadAncestor: the entry depends (through next) on an entry that was
	// rejected or is missing, so it cannot enter either.
	ErrBadAncestor = errors.New("depends on a rejected entry")
	// ErrJoinLimit: a join would fetch more new entries than the configured
	// per-join limit; entries beyond it were not fetched.
	ErrJoinLimit = errors.New("join limit reached")
	// ErrJoinCommitted: Commit called again on a PreparedJoin.
	ErrJoinCommitted = errors.New("prepared join already committed")
	// ErrReadOnly: Append on a log opened without a Signer.
	ErrReadOnly = errors.New("log is read-only (no signer)")
	// ErrInvalidOption: Open was given an out-of-range option.
	ErrInvalidOption = errors.New("invalid option")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("log closed")
	// ErrWriteFailed: an append or join staged after one whose write
	// failed was undone with it (it built on what was not written).
	ErrWriteFailed = errors.New("an earlier write of the log failed")
)

// Rejection says that one entry did not enter the log, which peer sent it
// and why. Err wraps one of the sentinel errors.
type Rejection struct {
	CID  cid.Cid
	From string
	Err  error
}

// Error describes the rejection: entry, peer and reason.
func (r Rejection) Error() string {
	return fmt.Sprintf("entry %s from peer %q: %v", r.CID, r.From, r.Err)
}

// Unwrap returns the reason.
func (r Rejection) Unwrap() error { return r.Err }

// JoinError is returned by Join when at least one entry was rejected (or the
// join limit was hit). Entries that did not depend on a rejected one were
// still added; JoinResult lists both. errors.Is(err, ErrBadSignature) etc.
// holds when any rejection has that reason.
type JoinError struct {
	// Log is the log id.
	Log string
	// From is the peer the join fetched from.
	From string
	// Rejections lists every rejected entry, in CID order.
	Rejections []Rejection
	// Limit, if non-nil, wraps ErrJoinLimit.
	Limit error
}

// Error summarises the join's rejections (the first three in full).
func (e *JoinError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "join log %q from peer %q: %d entries rejected", e.Log, e.From, len(e.Rejections))
	for i, r := range e.Rejections {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Rejections)-i)
			break
		}
		fmt.Fprintf(&b, "; %s: %v", r.CID, r.Err)
	}
	if e.Limit != nil {
		fmt.Fprintf(&b, "; %v", e.Limit)
	}
	return b.String()
}

// Unwrap returns every rejection (and the limit error), so errors.Is and
// errors.As see each reason.
func (e *JoinError) Unwrap() []error {
	errs := make([]error, 0, len(e.Rejections)+1)
	for _, r := range e.Rejections {
		errs = append(errs, r)
	}
	if e.Limit != nil {
		errs = append(errs, e.Limit)
	}
	return errs
}
