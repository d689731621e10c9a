package sdk

import (
	"context"
	"errors"
	"iter"
	"net"
	"time"
)

// Kind names what a plugin gives the node. One plugin may give several.
type Kind string

// The plugin kinds the node knows.
const (
	KindNetwork   Kind = "network"
	KindTransport Kind = "transport"
	KindDiscovery Kind = "discovery"
	KindStore     Kind = "store"
)

// ErrNotFound is returned by a Store (and a Network's block getter) when the
// key or block does not exist. It crosses the process boundary intact:
// errors.Is(err, sdk.ErrNotFound) holds for an out-of-process plugin too.
var ErrNotFound = errors.New("not found")

// Description is what a plugin says about itself in answer to Describe.
type Description struct {
	// ID is the plugin's namespaced identifier, e.g. "store.pebble".
	ID string
	// Kinds lists every kind this plugin implements.
	Kinds []Kind
	// Version is the plugin's own version (semver recommended).
	Version string
	// Capabilities names optional features, e.g. "transport.socket".
	Capabilities []string
	// ConfigSchema documents the plugin's config subtree: key -> description.
	ConfigSchema []ConfigKey
}

// ConfigKey documents one key of a plugin's config subtree.
type ConfigKey struct {
	Key         string
	Type        string // "string", "int", "bool", "duration", "list", "map"
	Default     string
	Description string
	Required    bool
}

// Severity of a configuration diagnostic.
type Severity int

// Diagnostic severities.
const (
	SeverityWarning Severity = iota + 1
	SeverityError
)

// Diagnostic is one problem Configure found. A plugin reports bad config as
// diagnostics and never crashes on it.
type Diagnostic struct {
	Severity Severity
	// Key is the offending key inside the plugin's subtree ("" for the whole).
	Key     string
	Message string
}

// Plugin is the lifecycle every plugin implements, whatever its kinds.
//
// New must have no side effects; Configure validates and applies config and
// returns diagnostics (any SeverityError means the plugin must not be
// started); Start starts work; Stop is idempotent, safe after a partial start,
// and honours the context deadline.
//
// Optional capabilities, found by type assertion:
//   - StatusReporter: reports health for `skein plugins` and the node.
type Plugin interface {
	Describe(ctx context.Context) (Description, error)
	Configure(ctx context.Context, config map[string]any) ([]Diagnostic, error)
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Status is a plugin's health at one instant.
type Status struct {
	Healthy bool
	Message string
	// Details holds plugin-specific figures (peers, bytes, ...).
	Details map[string]string
}

// StatusReporter is an optional Plugin capability.
type StatusReporter interface {
	Status(ctx context.Context) (Status, error)
}

// ---- store ----

// Op is one write in a Store batch.
type Op struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// KeyValue is one result of a prefix query.
type KeyValue struct {
	Key   []byte
	Value []byte
}

// Query selects keys by prefix.
type Query struct {
	Prefix   []byte
	KeysOnly bool
	// Limit caps the results; 0 means no limit.
	Limit int
}

// Store is a durable key-value store (go-datastore-like) with ordered keys.
type Store interface {
	Get(ctx context.Context, key []byte) ([]byte, error) // ErrNotFound if absent
	Put(ctx context.Context, key, value []byte) error
	Delete(ctx context.Context, key []byte) error
	Has(ctx context.Context, key []byte) (bool, error)
	// Batch applies ops atomically; with sync it returns only once they are durable.
	Batch(ctx context.Context, ops []Op, sync bool) error
	// Query streams matching pairs in key order.
	Query(ctx context.Context, q Query) iter.Seq2[KeyValue, error]
	// Sync makes every acknowledged write durable.
	Sync(ctx context.Context) error
}

// ---- transport ----

// PacketProfile describes a radio-like link so the node can size its frames.
type PacketProfile struct {
	// MTU is the largest write the link carries in one packet (0: stream).
	MTU int
	// Bandwidth in bytes per second, 0 if unknown.
	Bandwidth int64
	// Latency is the typical one-way latency, 0 if unknown.
	Latency time.Duration
}

// Transport moves bytes between two devices. It sees only ciphertext: the
// network runs Noise and yamux on top of every connection it gives.
//
// Addresses are transport-specific strings (e.g. a BLE address, a path).
//
// Optional capabilities, found by type assertion:
//   - PacketTransport: reports a PacketProfile.
type Transport interface {
	// Protocol is the multiaddr protocol name the transport registers, e.g. "x-ble".
	Protocol() string
	Listen(ctx context.Context, addr string) (Listener, error)
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// PacketTransport is an optional Transport capability.
type PacketTransport interface {
	PacketProfile() PacketProfile
}

// Listener accepts inbound transport connections.
type Listener interface {
	Accept(ctx context.Context) (net.Conn, error)
	Addr() string
	Close() error
}

// ---- discovery ----

// PeerInfo is a peer found by discovery: its network peer ID and addresses.
type PeerInfo struct {
	ID    string
	Addrs []string
}

// Discovery finds peers nearby or by rendezvous.
type Discovery interface {
	// Advertise announces self under namespace until ctx ends. It returns
	// once announcing has started (or failed to); the announcing goes on
	// in the background until ctx ends.
	Advertise(ctx context.Context, namespace string, self PeerInfo) error
	// FindPeers streams peers found under namespace until ctx ends.
	FindPeers(ctx context.Context, namespace string) (<-chan PeerInfo, error)
}

// ---- network ----

// Block is a content-addressed block: CID (binary form) and its bytes.
type Block struct {
	CID  []byte
	Data []byte
}

// PubsubMessage is one message received on a topic.
type PubsubMessage struct {
	Topic string
	From  string // sender peer ID
	Data  []byte
}

// Network is a libp2p/IPFS host as the node sees it.
type Network interface {
	PeerID() string
	Addrs() []string
	PutBlocks(ctx context.Context, blocks []Block) error
	// GetBlocks fetches blocks by CID from the local store or the network and
	// streams them as they arrive, in any order.
	GetBlocks(ctx context.Context, cids [][]byte) iter.Seq2[Block, error]
	HasBlock(ctx context.Context, cid []byte) (bool, error)
	Publish(ctx context.Context, topic string, data []byte) error
	Subscribe(ctx context.Context, topic string) (<-chan PubsubMessage, error)
	Connect(ctx context.Context, p PeerInfo) error
	Peers(ctx context.Context) ([]PeerInfo, error)
	Provide(ctx context.Context, cid []byte) error
	FindProviders(ctx context.Context, cid []byte) (<-chan PeerInfo, error)
}
