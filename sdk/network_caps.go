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

// TopicPeerEvent reports a peer joining or leaving a pubsub topic: the
// peer announced (or withdrew) its subscription to the topic to this node.
type TopicPeerEvent struct {
	Peer   string
	Joined bool
}

// TopicPeerNotifier is an optional Network capability: a stream of the
// peers joining and leaving one pubsub topic this node subscribes to (for
// gossipsub, the topic's PeerJoin and PeerLeave events), so replication can
// swap heads with a peer as soon as the topic's messages can reach it, not
// only when it connects.
//
// A join means the network now knows the peer subscribes to the topic; on
// a closed topic (TopicGate) it says nothing of admission either way.
type TopicPeerNotifier interface {
	// TopicPeerEvents streams the topic's join and leave events until ctx
	// ends. Peers already on the topic when it is called are reported
	// first, as joins. The caller must be subscribed to the topic (or
	// about to be): a network may report nothing for a topic it has not
	// joined.
	TopicPeerEvents(ctx context.Context, topic string) (<-chan TopicPeerEvent, error)
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

// TopicGate is an optional Network capability: closed pubsub topics, for
// groups whose traffic only peers that proved membership may see.
//
// The mesh of a closed topic holds only peers this node admitted; the
// network sends the topic's messages (published or forwarded, and gossip
// about them) only to admitted peers, and drops what other peers send on it
// without passing it to a validator or a subscriber. As far as the network
// can, it does not tell a peer that is not admitted that this node
// subscribes to the topic. Admission is per connection: it ends when the
// peer's last connection to this node closes, and the node must admit the
// peer again after it reconnects and proves itself again.
type TopicGate interface {
	// CloseTopic makes topic closed. Call it before Subscribe or Publish on
	// the topic; it is idempotent, and a topic stays closed until the
	// network stops.
	CloseTopic(ctx context.Context, topic string) error
	// AdmitPeer admits peer to the closed topic (admit true) until its last
	// connection closes, or evicts it at once (admit false): nothing on the
	// topic is sent to it from then on. A peer admitted again may be sent
	// messages of the topic that are still in the network's caches (for
	// gossipsub, a few heartbeats), including ones published while it was
	// out; a group that must keep them from it changes its keys. Admitting a
	// peer that is not connected is an error wrapping ErrNotFound;
	// admitting one to a topic that is not closed, an error wrapping
	// ErrInvalidArgument. Evicting a peer that is not admitted does
	// nothing.
	AdmitPeer(ctx context.Context, topic, peer string, admit bool) error
}

// Verdict is what a TopicValidator says of one pubsub message.
type Verdict int

// Verdicts.
const (
	// VerdictAccept: deliver the message and forward it.
	VerdictAccept Verdict = iota + 1
	// VerdictIgnore: drop it, do not forward it, no penalty for the sender
	// (e.g. it names what cannot be checked yet).
	VerdictIgnore
	// VerdictReject: drop it, do not forward it, and count it against the
	// peer that handed it over (it is provably bad).
	VerdictReject
)

// MessageValidator judges one pubsub message from peer from (the peer that
// handed it over, not necessarily its author). It runs concurrently and
// must be quick: the network holds the message until it answers, and takes
// no answer by ctx's end as VerdictIgnore.
type MessageValidator func(ctx context.Context, from string, data []byte) Verdict

// TopicValidator is an optional Network capability: the node judges every
// message of a topic before the network delivers it or forwards it.
type TopicValidator interface {
	// ValidateTopic registers v for topic, replacing any earlier one; nil
	// removes it. Every message received on topic passes v before it is
	// delivered to a subscriber or forwarded to any peer; a message this
	// node published itself is not passed to v.
	ValidateTopic(topic string, v MessageValidator) error
}

// PeerScorer is an optional Network capability: the node's own judgement
// of a peer feeds the network's peer scoring (gossipsub's
// application-specific score), so a peer whose claims turn out false is
// first pruned from meshes and then cut off, while one that served what it
// announced keeps its place.
type PeerScorer interface {
	// ScorePeer adds delta to peer's application score: negative for what
	// turned out bad (a head nobody served, an entry rejected), positive
	// for what turned out good. The network bounds and decays the score
	// and decides what a low score costs the peer; reason is for its log.
	// A peer that is not connected is scored too (it may come back).
	//
	// Scale, by convention: -10 is one clear fault, as much as one message
	// a validator rejects costs the peer that handed it over. network.ipfs
	// by default prunes a peer from meshes below 0, ignores its pubsub
	// traffic below -80 and cuts it off below -160, and bounds the
	// application score to [-1000, 10], halved every minute.
	ScorePeer(ctx context.Context, peer string, delta float64, reason string) error
}
