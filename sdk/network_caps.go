package sdk

import (
	"context"
	"time"
)

// Optional Network capabilities, found by type assertion on a Network.
// The replication layer uses them when present and falls back to pubsub
// alone when not.

// PeerEvent reports a peer connecting or disconnecting.
type PeerEvent struct {
	Peer      string
	Connected bool
}

// PeerNotifier is an optional Network capability: a stream of connection
// events, so replication can swap heads with a peer as soon as it connects.
type PeerNotifier interface {
	// PeerEvents streams events until ctx ends. Peers connected when it is
	// called are reported first as Connected events.
	PeerEvents(ctx context.Context) (<-chan PeerEvent, error)
}

// RequestHandler answers one direct request from peer `from`.
type RequestHandler func(ctx context.Context, from string, request []byte) ([]byte, error)

// DirectMessenger is an optional Network capability: request/response with
// one peer over a protocol of the node's own (e.g. head exchange).
type DirectMessenger interface {
	// HandleRequests registers h for protocol (e.g. "/skein/heads/1").
	// A nil handler removes it.
	HandleRequests(protocol string, h RequestHandler) error
	// Request sends request to peer and returns its answer.
	Request(ctx context.Context, peer, protocol string, request []byte) ([]byte, error)
}

// PeerBlocker is an optional Network capability: cut a misbehaving peer off
// (close its connections and refuse it) for a while.
type PeerBlocker interface {
	BlockPeer(ctx context.Context, peer string, reason string, d time.Duration) error
}
