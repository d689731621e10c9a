package group

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
)

// Token errors. Every error from ParseInvitation, ParseContactToken and
// ParseContactRequest wraps exactly one of them and says what is wrong.
var (
	// ErrTokenPrefix: the text does not start with TokenPrefix ("skein1-"),
	// e.g. it is not a Skein token or was cut at the front.
	ErrTokenPrefix = errors.New("token prefix is not " + TokenPrefix)
	// ErrTokenEncoding: a character outside the base32 alphabet.
	ErrTokenEncoding = errors.New("token has an invalid character")
	// ErrTokenTruncated: the token is shorter than its kind requires, e.g.
	// it was cut while copying.
	ErrTokenTruncated = errors.New("token is truncated")
	// ErrTokenChecksum: the checksum does not match: a character was changed
	// or the token was cut or extended.
	ErrTokenChecksum = errors.New("token checksum mismatch")
	// ErrTokenType: the token is valid but of another kind (a contact
	// token where an invitation was expected, or an unknown kind).
	ErrTokenType = errors.New("wrong token type")
	// ErrTokenMalformed: the checksum is right but the content is invalid
	// (unknown group kind or flag, bad key, bad name, bad signature).
	ErrTokenMalformed = errors.New("malformed token")
)

// Group errors.
var (
	// ErrWrongGroup: an invitation, request or entry is for another group.
	ErrWrongGroup = errors.New("for another group")
	// ErrInvitationUnknown: the invitation's key is not registered in the
	// group's metadata log (revoked by a rekey, or not synced yet).
	ErrInvitationUnknown = errors.New("invitation not registered in the group")
	// ErrInvitationRevoked: the invitation is for an epoch a rekey ended;
	// it wraps ErrInvitationUnknown. It is final: ask for a new invitation.
	ErrInvitationRevoked = fmt.Errorf("%w: revoked by a rekey", ErrInvitationUnknown)
	// ErrMalformedPayload: a metadata payload or message envelope does not
	// decode.
	ErrMalformedPayload = errors.New("malformed payload")
	// ErrNotMember: the writer (or this device) is not a member device of
	// the group or of the epoch it names.
	ErrNotMember = errors.New("not a member")
	// ErrRemoved: the writer's account was removed (or left) and the entry
	// lies past the cutoff recorded at removal.
	ErrRemoved = errors.New("member removed")
	// ErrUnsavedMessages: SaveKeys saved nothing because the readable
	// copies of delivered messages could not be stored (a failing store).
	ErrUnsavedMessages = errors.New("delivered messages not stored")
	// ErrNotCertified: a device certificate does not verify under its
	// account key, or its account may not join this group.
	ErrNotCertified = errors.New("device not certified")
	// ErrBadAuthorization: a group-created or device-added authorization
	// signature does not verify.
	ErrBadAuthorization = errors.New("bad authorization signature")
	// ErrUnknownEpoch: an entry names an epoch the metadata log does not
	// define.
	ErrUnknownEpoch = errors.New("unknown epoch")
	// ErrTampered: a sealed header or body does not open: tampered, sealed
	// under another key, or bound to another writer/group.
	ErrTampered = errors.New("sealed part does not open")
	// ErrReplay: a message repeats a (sender, epoch, ratchet index) that was
	// already delivered; the later one in processing order is dropped.
	ErrReplay = errors.New("replayed message")
	// ErrUnreadable: a valid message this device has no key for, e.g. sent
	// before it joined (its sender shared its chain with this device from a
	// later message on).
	ErrUnreadable = errors.New("message not readable by this device")
	// ErrConflict: a metadata entry contradicts an earlier one in the total
	// order (a second, different group-created, a reused epoch id).
	ErrConflict = errors.New("conflicting metadata")
	// ErrClosed: the group was closed.
	ErrClosed = errors.New("group closed")

	// ErrSuiteMismatch: the group seals with another crypto suite than
	// the one this device was given (group.WithSuite), or with one it
	// does not have.
	ErrSuiteMismatch = errors.New("crypto suite mismatch")
)

// Rejection is one entry the group refused, with the peer it came from
// ("" for a local decision) and the reason.
type Rejection struct {
	// Log is "meta" or "messages".
	Log string
	// CID is the entry's CID.
	CID cid.Cid
	// From is the peer that sent it, as given to Receive.
	From string
	// Err wraps a sentinel error of this package or of core/log.
	Err error
}

// Error describes the rejection: log, entry, peer and reason.
func (r Rejection) Error() string {
	return fmt.Sprintf("%s entry %s from peer %q: %v", r.Log, r.CID, r.From, r.Err)
}

// Unwrap returns the reason.
func (r Rejection) Unwrap() error { return r.Err }

// RejectedError is returned by Receive (and Refresh) when entries were
// refused. The good entries were still added and processed.
type RejectedError struct {
	Group      string
	Rejections []Rejection
}

// Error summarises the rejections (the first three in full).
func (e *RejectedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "group %s: %d entries rejected", e.Group, len(e.Rejections))
	for i, r := range e.Rejections {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Rejections)-i)
			break
		}
		fmt.Fprintf(&b, "; %v", r)
	}
	return b.String()
}

// Unwrap returns each rejection so errors.Is sees every reason.
func (e *RejectedError) Unwrap() []error {
	out := make([]error, len(e.Rejections))
	for i, r := range e.Rejections {
		out[i] = r
	}
	return out
}
