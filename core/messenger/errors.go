package messenger

import "errors"

// Sentinel errors of the messenger. The client API maps them to gRPC codes.
var (
	// ErrGroupNotFound: no group this node holds matches the reference.
	ErrGroupNotFound = errors.New("no such group")
	// ErrAmbiguous: a reference (group name or id prefix, member prefix)
	// matches more than one.
	ErrAmbiguous = errors.New("ambiguous reference")
	// ErrMemberNotFound: no member of the group matches the reference.
	ErrMemberNotFound = errors.New("no such member")
	// ErrInvalidArgument: a request is malformed (empty body, bad name,
	// bad cid).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnreachable: a peer could not be connected to.
	ErrUnreachable = errors.New("peer unreachable")
	// ErrClosed: the messenger is closed.
	ErrClosed = errors.New("messenger closed")
)
