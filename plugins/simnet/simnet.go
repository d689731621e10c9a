package simnet

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors.
var (
	// ErrUnreachable: no live connection to the peer (not connected,
	// partitioned, blocked, or a node is down).
	ErrUnreachable = errors.New("simnet: peer unreachable")
	// ErrUnknownPeer: no node has that ID.
	ErrUnknownPeer = errors.New("simnet: unknown peer")
	// ErrNoHandler: the peer has no handler for the requested protocol.
	ErrNoHandler = errors.New("simnet: protocol not supported by peer")
	// ErrStopped: the node is stopped or the network closed.
	ErrStopped = errors.New("simnet: node stopped")
	// ErrHashMismatch: a block's bytes do not hash to its CID.
	ErrHashMismatch = errors.New("simnet: block does not match its cid")
	// ErrDuplicateNode: AddNode with an ID already in use.
	ErrDuplicateNode = errors.New("simnet: duplicate node id")
)

// Link describes one directed link between two nodes.
type Link struct {
	// Latency is the one-way delay of every message and block transfer.
	Latency time.Duration
	// Jitter adds a uniform random delay in [0, Jitter) to each pubsub
	// message (order on the link is kept).
	Jitter time.Duration
	// Loss is the probability, in [0, 1], that a pubsub message on this
	// link is dropped. Blocks and direct requests are never lost.
	Loss float64
	// Bandwidth is the link's rate in bytes per second (0: unlimited).
	// Pubsub messages queue behind each other on the link; a block fetch
	// takes its bytes' transfer time on top of the round trip.
	Bandwidth int64
}

// Stats counts pubsub traffic across the whole network.
//
// Copies are counted per link and per subscription: Sent = Lost +
// Received (+ copies in flight), and each copy Received (and, in the
// mesh, not a Duplicate) is Delivered once to every subscription of its
// topic on the receiving node. Delivered is therefore a multiple of the
// copies when a node subscribes to a topic more than once (e.g. a
// replicator and a traffic observer on the same node): that is how a
// run of ten nodes showed Delivered = 2 x Sent.
type Stats struct {
	Published uint64 // Publish calls
	Sent      uint64 // copies put on links (by publishers and relays)
	Lost      uint64 // copies dropped by link loss or a link gone down
	Received  uint64 // copies that arrived at a node
	Duplicate uint64 // copies that arrived at a node that had the message (mesh)
	Rejected  uint64 // copies a node's validator refused (WithValidator)
	Overflow  uint64 // copies dropped at a full subscription
	Delivered uint64 // copies handed to a subscription
	Gossip    uint64 // IHAVE notices sent (mesh)
	Blocks    uint64 // blocks fetched from a peer
	Requests  uint64 // direct requests answered
}

// Option configures New.
type Option func(*Network)

// WithSeed seeds the loss and jitter generators (default 1).
func WithSeed(seed uint64) Option { return func(n *Network) { n.seed = seed } }

// WithDefaultLink sets the link used between nodes without SetLink
// (default: no latency, no loss).
func WithDefaultLink(l Link) Option { return func(n *Network) { n.defaultLink = l } }

// WithQueueSize sets how many pubsub messages a subscription holds before
// dropping new ones (default 4096).
func WithQueueSize(size int) Option {
	return func(n *Network) {
		if size > 0 {
			n.queueSize = size
		}
	}
}

// WithRetryInterval sets how often a block fetch that found no provider
// asks again (default 10 ms).
func WithRetryInterval(d time.Duration) Option {
	return func(n *Network) {
		if d > 0 {
			n.retry = d
		}
	}
}

type pair struct{ a, b string } // a < b

func mkpair(a, b string) pair {
	if a > b {
		a, b = b, a
	}
	return pair{a, b}
}

type dirLink struct{ from, to string }

// Network is the simulated network: the nodes and the links between them.
type Network struct {
	seed        uint64
	defaultLink Link
	queueSize   int
	retry       time.Duration

	mode       PubsubMode
	meshParams MeshParams
	validator  func(topic string, data []byte) error
	scheds     []*scheduler // by receiving node: a link's copies share one

	mu      sync.Mutex
	closed  bool
	nodes   map[string]*Node
	order   []string       // node IDs in AddNode order
	index   map[string]int // node ID -> position in order
	links   map[dirLink]Link
	rngs    map[dirLink]*rand.Rand
	lastAt  map[dirLink]time.Time // latest arrival scheduled on each link
	txBusy  map[dirLink]time.Time // when each link has sent what it holds (bandwidth; see admitLocked)
	conns   map[pair]bool
	side    map[string]int                 // partition side; absent: side 0
	live    map[pair]bool                  // last reported live state
	adj     map[string]map[string]struct{} // live, both ways
	meshRng *rand.Rand
	// provided: content routing records, cid key -> providing node IDs
	provided map[string]map[string]bool

	// blocks holds one copy of each block's bytes, which every node that
	// stores the block shares (they are immutable and named by their hash).
	blockMu sync.Mutex
	blocks  map[string][]byte

	stats struct {
		published, sent, lost, received, duplicate, rejected, overflow, delivered, gossip,
		blocks, requests atomic.Uint64
	}
	topics topicStats
	wg     sync.WaitGroup
}

// New returns an empty simulated network.
func New(opts ...Option) *Network {
	n := &Network{seed: 1, queueSize: 4096, retry: 10 * time.Millisecond, meshParams: DefaultMeshParams(),
		nodes: map[string]*Node{}, index: map[string]int{}, links: map[dirLink]Link{},
		rngs: map[dirLink]*rand.Rand{}, lastAt: map[dirLink]time.Time{}, conns: map[pair]bool{},
		side: map[string]int{}, live: map[pair]bool{}, adj: map[string]map[string]struct{}{},
		provided: map[string]map[string]bool{}, blocks: map[string][]byte{}}
	for _, o := range opts {
		o(n)
	}
	n.meshRng = rand.New(rand.NewPCG(n.seed, 0x6d657368))
	// A few goroutines carry every message in flight (each receiving
	// node's on one of them, so a link keeps its order) and the heartbeat:
	// several, so that they keep their share of the CPU among the nodes'
	// goroutines.
	for range max(4, 2*runtime.GOMAXPROCS(0)) {
		s := newScheduler()
		n.scheds = append(n.scheds, s)
		n.wg.Go(s.run)
	}
	n.scheds[0].at(time.Now().Add(n.meshParams.Heartbeat), n.heartbeat)
	return n
}

// AddNode adds a running node whose peer ID is id.
func (n *Network) AddNode(id string) (*Node, error) {
	if id == "" {
		return nil, errors.New("simnet: empty node id")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrStopped
	}
	if _, ok := n.nodes[id]; ok {
		return nil, fmt.Errorf("%w: %q", ErrDuplicateNode, id)
	}
	nd := newNode(n, id)
	n.nodes[id] = nd
	n.index[id] = len(n.order)
	n.order = append(n.order, id)
	return nd, nil
}

// Node returns the node with that ID, or nil.
func (n *Network) Node(id string) *Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[id]
}

// SetLink sets the link in both directions between a and b.
func (n *Network) SetLink(a, b string, l Link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.links[dirLink{a, b}] = l
	n.links[dirLink{b, a}] = l
}

// ConnectAll connects every pair of nodes.
func (n *Network) ConnectAll() {
	n.mu.Lock()
	for i, a := range n.order {
		for _, b := range n.order[i+1:] {
			n.conns[mkpair(a, b)] = true
		}
	}
	ev := n.recomputeLocked()
	n.mu.Unlock()
	n.emit(ev)
}

// ConnectPairs connects each listed pair of node IDs at once (one
// recomputation for all, unlike a Connect per pair); unknown IDs and a
// node paired with itself are skipped.
func (n *Network) ConnectPairs(pairs [][2]string) {
	n.mu.Lock()
	for _, p := range pairs {
		if p[0] != p[1] && n.nodes[p[0]] != nil && n.nodes[p[1]] != nil {
			n.conns[mkpair(p[0], p[1])] = true
		}
	}
	ev := n.recomputeLocked()
	n.mu.Unlock()
	n.emit(ev)
}

// Disconnect closes the connection between a and b (they stay apart until
// one Connects again).
func (n *Network) Disconnect(a, b string) {
	n.mu.Lock()
	delete(n.conns, mkpair(a, b))
	ev := n.recomputeLocked()
	n.mu.Unlock()
	n.emit(ev)
}

// Partition splits the network: the nodes of each listed side can reach
// only each other; nodes listed in no side form one more side together.
// Connections across sides go down (and come back on Heal).
func (n *Network) Partition(sides ...[]string) {
	n.mu.Lock()
	clear(n.side)
	for i, s := range sides {
		for _, id := range s {
			n.side[id] = i + 1
		}
	}
	ev := n.recomputeLocked()
	n.mu.Unlock()
	n.emit(ev)
}

// Heal removes the partition; connections that were cut come back.
func (n *Network) Heal() { n.Partition() }

// Stats returns the traffic counters.
func (n *Network) Stats() Stats {
	s := &n.stats
	return Stats{Published: s.published.Load(), Sent: s.sent.Load(), Lost: s.lost.Load(),
		Received: s.received.Load(), Duplicate: s.duplicate.Load(), Rejected: s.rejected.Load(),
		Overflow: s.overflow.Load(), Delivered: s.delivered.Load(), Gossip: s.gossip.Load(),
		Blocks: s.blocks.Load(), Requests: s.requests.Load()}
}

// Close stops every node and drops the messages in flight.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	nodes := make([]*Node, 0, len(n.nodes))
	for _, nd := range n.nodes {
		nodes = append(nodes, nd)
	}
	n.mu.Unlock()
	for _, s := range n.scheds {
		s.close()
	}
	for _, nd := range nodes {
		nd.shutdown()
	}
	n.wg.Wait()
	return nil
}

func (n *Network) linkLocked(from, to string) Link {
	if l, ok := n.links[dirLink{from, to}]; ok {
		return l
	}
	return n.defaultLink
}

func (n *Network) rngLocked(from, to string) *rand.Rand {
	k := dirLink{from, to}
	r := n.rngs[k]
	if r == nil {
		h := fnv.New64a()
		h.Write([]byte(from))
		h.Write([]byte{0})
		h.Write([]byte(to))
		r = rand.New(rand.NewPCG(n.seed, h.Sum64()))
		n.rngs[k] = r
	}
	return r
}

// liveLocked reports whether a and b can talk now.
func (n *Network) liveLocked(a, b string) bool {
	return n.conns[mkpair(a, b)] && n.routableLocked(a, b)
}

type peerEventFor struct {
	node      *Node
	peer      string
	connected bool
}

// recomputeLocked diffs the live state of every pair against the last
// reported one and returns the events to emit (after unlocking).
func (n *Network) recomputeLocked() []peerEventFor {
	var ev []peerEventFor
	seen := map[pair]bool{}
	check := func(p pair) {
		if seen[p] {
			return
		}
		seen[p] = true
		ev = n.recheckLocked(p, ev)
	}
	for p := range n.conns {
		check(p)
	}
	for p := range n.live {
		check(p)
	}
	return ev
}

// recheckLocked updates the live state of one pair and appends the events
// to emit if it changed.
func (n *Network) recheckLocked(p pair, ev []peerEventFor) []peerEventFor {
	now := n.liveLocked(p.a, p.b)
	if now == n.live[p] {
		return ev
	}
	if now {
		n.live[p] = true
		n.link(p.a, p.b)
		n.link(p.b, p.a)
	} else {
		delete(n.live, p)
		delete(n.adj[p.a], p.b)
		delete(n.adj[p.b], p.a)
	}
	return append(ev, peerEventFor{n.nodes[p.a], p.b, now}, peerEventFor{n.nodes[p.b], p.a, now})
}

func (n *Network) emit(ev []peerEventFor) {
	for _, e := range ev {
		if e.node != nil {
			e.node.peerEvent(e.peer, e.connected)
		}
	}
}

func (n *Network) recompute() {
	n.mu.Lock()
	ev := n.recomputeLocked()
	n.mu.Unlock()
	n.emit(ev)
}

// routableLocked reports whether a content-routing lookup by a reaches b:
// like a DHT, it needs no direct connection, only that both are up, on the
// same side of a partition, and not blocking each other.
func (n *Network) routableLocked(a, b string) bool {
	na, nb := n.nodes[a], n.nodes[b]
	if a == b || na == nil || nb == nil || !na.isUp() || !nb.isUp() || n.side[a] != n.side[b] {
		return false
	}
	return !na.blocks(b) && !nb.blocks(a)
}

// intern returns the network's copy of the block named key, made from
// data (copied) if it has none.
func (n *Network) intern(key string, data []byte) []byte {
	n.blockMu.Lock()
	defer n.blockMu.Unlock()
	if d, ok := n.blocks[key]; ok {
		return d
	}
	d := bytes.Clone(data)
	n.blocks[key] = d
	return d
}

// schedFor returns the scheduler of what arrives at nd.
func (n *Network) schedFor(nd *Node) *scheduler { return n.scheds[n.index[nd.id]%len(n.scheds)] }

func (n *Network) link(a, b string) {
	m := n.adj[a]
	if m == nil {
		m = map[string]struct{}{}
		n.adj[a] = m
	}
	m[b] = struct{}{}
}

// livePeers returns the peers id can talk to now, in AddNode order.
func (n *Network) livePeers(id string) []*Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.livePeersLocked(id)
}

// livePeersLocked is livePeers, from the index of live pairs (the cost
// follows the node's connections, not the network's size); a live pair
// whose liveness changed since the last recomputation is checked again.
func (n *Network) livePeersLocked(id string) []*Node {
	out := make([]*Node, 0, len(n.adj[id]))
	for other := range n.adj[id] {
		if n.liveLocked(id, other) {
			out = append(out, n.nodes[other])
		}
	}
	slices.SortFunc(out, func(a, b *Node) int { return n.index[a.id] - n.index[b.id] })
	return out
}

// latency returns the one-way latency from a to b and whether they are live.
func (n *Network) latency(a, b string) (time.Duration, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.linkLocked(a, b).Latency, n.liveLocked(a, b)
}

// sortedKeys is a small helper for deterministic iteration.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
