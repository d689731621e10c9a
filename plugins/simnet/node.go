package simnet

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/internal/queue"
	"github.com/skein-p2p/skein/sdk"
)

// PluginID is the plugin's registered ID.
const PluginID = "network.simnet"

// Compile-time checks.
var (
	_ sdk.Plugin          = (*Node)(nil)
	_ sdk.Network         = (*Node)(nil)
	_ sdk.PeerNotifier    = (*Node)(nil)
	_ sdk.DirectMessenger = (*Node)(nil)
	_ sdk.PeerBlocker     = (*Node)(nil)
	_ sdk.StatusReporter  = (*Node)(nil)
)

// Node is one simulated peer: an sdk.Network (and sdk.Plugin) with every
// optional capability. Its peer ID is the ID it was added with.
type Node struct {
	net *Network
	id  string

	mu       sync.Mutex
	up       bool
	store    map[string][]byte // cid key string -> bytes
	subs     map[string]map[*subscription]struct{}
	handlers map[string]sdk.RequestHandler
	blocked  map[string]time.Time
	streams  map[*eventStream]struct{}
	// topicStreams: TopicPeerEvents streams (topicpeers.go).
	topicStreams map[*topicStream]struct{}

	counters nodeCounters
	traffic  nodeTraffic
	ps       nodePubsub // under net.mu
}

func newNode(n *Network, id string) *Node {
	return &Node{net: n, id: id, up: true, store: map[string][]byte{},
		subs: map[string]map[*subscription]struct{}{}, handlers: map[string]sdk.RequestHandler{},
		blocked: map[string]time.Time{}, streams: map[*eventStream]struct{}{},
		topicStreams: map[*topicStream]struct{}{}, ps: newNodePubsub()}
}

// topics returns the topics the node subscribes to, sorted.
func (nd *Node) topics() []string {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return sortedKeys(nd.subs)
}

// PubsubValidated reports whether the peer a pubsub message arrives from
// is answerable for it (see replication.WithPubsubValidated): every node
// validates what it delivers and forwards (WithValidator), or nothing is
// relayed (PubsubFlood, or PubsubAuto at MeshThreshold nodes or fewer when
// asked).
func (nd *Node) PubsubValidated() bool {
	n := nd.net
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.validator != nil || !n.meshModeLocked()
}

func (nd *Node) isUp() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.up
}

// blocks reports whether this node currently refuses peer.
func (nd *Node) blocks(peer string) bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	until, ok := nd.blocked[peer]
	return ok && time.Now().Before(until)
}

func (nd *Node) subscribed(topic string) bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return len(nd.subs[topic]) > 0
}

// Describe implements sdk.Plugin.
func (nd *Node) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: PluginID, Kinds: []sdk.Kind{sdk.KindNetwork}, Version: "0.1.0",
		Capabilities: []string{"network.peer_events", "network.direct", "network.block_peer"}}, nil
}

// Configure implements sdk.Plugin; a simulated node takes no config, so any
// key is reported as unknown.
func (nd *Node) Configure(_ context.Context, config map[string]any) ([]sdk.Diagnostic, error) {
	var diags []sdk.Diagnostic
	for _, k := range sortedKeys(config) {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: k, Message: "unknown key (network.simnet takes no config)"})
	}
	return diags, nil
}

// Start implements sdk.Plugin: the node comes (back) up and its
// connections that can be live go live.
func (nd *Node) Start(context.Context) error {
	nd.mu.Lock()
	nd.up = true
	nd.mu.Unlock()
	nd.net.recompute()
	return nil
}

// Stop implements sdk.Plugin: the node goes down; its connections go down,
// its subscriptions and event streams end. Its blocks stay. Idempotent.
func (nd *Node) Stop(context.Context) error {
	nd.shutdown()
	nd.net.recompute()
	return nil
}

func (nd *Node) shutdown() {
	nd.mu.Lock()
	nd.up = false
	subs := nd.subs
	nd.subs = map[string]map[*subscription]struct{}{}
	streams := nd.streams
	nd.streams = map[*eventStream]struct{}{}
	topicStreams := nd.topicStreams
	nd.topicStreams = map[*topicStream]struct{}{}
	nd.mu.Unlock()
	for ts := range topicStreams {
		ts.q.Stop()
	}
	for _, set := range subs {
		for s := range set {
			s.Stop()
		}
	}
	for s := range streams {
		s.Stop()
	}
}

// Status implements sdk.StatusReporter.
func (nd *Node) Status(context.Context) (sdk.Status, error) {
	peers := nd.net.livePeers(nd.id)
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return sdk.Status{Healthy: nd.up, Message: "simulated",
		Details: map[string]string{"peers": fmt.Sprint(len(peers)), "blocks": fmt.Sprint(len(nd.store))}}, nil
}

// PeerID implements sdk.Network.
func (nd *Node) PeerID() string { return nd.id }

// Addrs implements sdk.Network: the node's one pseudo-address.
func (nd *Node) Addrs() []string { return []string{"/simnet/" + nd.id} }

// BlockCount returns how many blocks the node stores.
func (nd *Node) BlockCount() int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return len(nd.store)
}

// PutBlocks implements sdk.Network: every block must hash to its CID.
func (nd *Node) PutBlocks(_ context.Context, blocks []sdk.Block) error {
	type checked struct {
		key  string
		data []byte
	}
	ok := make([]checked, 0, len(blocks))
	for i, b := range blocks {
		c, err := cid.Cast(b.CID)
		if err != nil {
			return fmt.Errorf("put block %d: bad cid: %w", i, err)
		}
		sum, err := c.Prefix().Sum(b.Data)
		if err != nil {
			return fmt.Errorf("put block %s: %w", c, err)
		}
		if !sum.Equals(c) {
			return fmt.Errorf("put block %s: %w", c, ErrHashMismatch)
		}
		ok = append(ok, checked{c.KeyString(), b.Data})
	}
	for i := range ok {
		ok[i].data = nd.net.intern(ok[i].key, ok[i].data)
	}
	nd.mu.Lock()
	defer nd.mu.Unlock()
	for _, b := range ok {
		if _, have := nd.store[b.key]; !have {
			nd.store[b.key] = b.data
		}
	}
	return nil
}

func (nd *Node) local(key string) ([]byte, bool) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	d, ok := nd.store[key]
	return d, ok
}

// GetBlocks implements sdk.Network: local blocks first, then from any live
// peer that has them, asking again every retry interval until ctx ends; a
// block not had by then yields an error naming its CID.
func (nd *Node) GetBlocks(ctx context.Context, cids [][]byte) iter.Seq2[sdk.Block, error] {
	return func(yield func(sdk.Block, error) bool) {
		var want []cid.Cid
		for _, raw := range cids {
			c, err := cid.Cast(raw)
			if err != nil {
				if !yield(sdk.Block{}, fmt.Errorf("get block: bad cid: %w", err)) {
					return
				}
				continue
			}
			if d, ok := nd.local(c.KeyString()); ok {
				if !yield(sdk.Block{CID: c.Bytes(), Data: d}, nil) {
					return
				}
				continue
			}
			want = append(want, c)
		}
		for len(want) > 0 {
			if !nd.isUp() {
				break
			}
			got, rest := nd.fetch(ctx, want)
			for _, b := range got {
				if !yield(b, nil) {
					return
				}
			}
			want = rest
			if len(want) == 0 || ctx.Err() != nil {
				break
			}
			if len(got) > 0 {
				continue
			}
			t := time.NewTimer(nd.net.retry)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			if ctx.Err() != nil {
				break
			}
		}
		for _, c := range want {
			err := ctx.Err()
			if err == nil {
				err = ErrStopped
			}
			if !yield(sdk.Block{CID: c.Bytes()}, fmt.Errorf("get block %s: %w", c, err)) {
				return
			}
		}
	}
}

// fetch asks the live peers for the wanted blocks at once, as bitswap
// sends one want list: one round trip to the farthest provider needed.
// It returns the blocks had and the CIDs still wanted.
func (nd *Node) fetch(ctx context.Context, want []cid.Cid) ([]sdk.Block, []cid.Cid) {
	peers := nd.net.livePeers(nd.id)
	type found struct {
		c    cid.Cid
		from string
		data []byte
	}
	var hits []found
	var rest []cid.Cid
	var rtt time.Duration
	bytesFrom := map[string]int{}
	for _, c := range want {
		key := c.KeyString()
		ok := false
		for _, p := range peers {
			if data, have := p.local(key); have {
				hits = append(hits, found{c, p.id, data})
				bytesFrom[p.id] += len(data)
				if lat, _ := nd.net.latency(nd.id, p.id); 2*lat > rtt {
					rtt = 2 * lat
				}
				ok = true
				break
			}
		}
		if !ok {
			rest = append(rest, c)
		}
	}
	rtt = max(rtt, nd.net.transferTime(nd.id, bytesFrom))
	if len(hits) == 0 || !sleep(ctx, rtt) {
		return nil, want
	}
	var got []sdk.Block
	for _, h := range hits {
		if _, live := nd.net.latency(nd.id, h.from); !live {
			rest = append(rest, h.c)
			continue
		}
		nd.mu.Lock()
		if _, have := nd.store[h.c.KeyString()]; !have {
			nd.store[h.c.KeyString()] = h.data
		}
		nd.mu.Unlock()
		nd.net.stats.blocks.Add(1)
		nd.counters.fetched.Add(1)
		nd.traffic.received.Add(uint64(len(h.data)))
		if src := nd.net.Node(h.from); src != nil {
			src.counters.served.Add(1)
			src.traffic.sent.Add(uint64(len(h.data)))
		}
		got = append(got, sdk.Block{CID: h.c.Bytes(), Data: h.data})
	}
	return got, rest
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// HasBlock implements sdk.Network (local store only).
func (nd *Node) HasBlock(_ context.Context, raw []byte) (bool, error) {
	c, err := cid.Cast(raw)
	if err != nil {
		return false, fmt.Errorf("has block: bad cid: %w", err)
	}
	_, ok := nd.local(c.KeyString())
	return ok, nil
}

// Publish implements sdk.Network.
func (nd *Node) Publish(_ context.Context, topic string, data []byte) error {
	if !nd.isUp() {
		return ErrStopped
	}
	nd.net.publish(nd, topic, bytes.Clone(data))
	return nil
}

// Subscribe implements sdk.Network. Own messages are not delivered; the
// channel closes when ctx ends or the node stops.
func (nd *Node) Subscribe(ctx context.Context, topic string) (<-chan sdk.PubsubMessage, error) {
	s := queue.New[sdk.PubsubMessage](nd.net.queueSize)
	nd.mu.Lock()
	if !nd.up {
		nd.mu.Unlock()
		return nil, ErrStopped
	}
	if nd.subs[topic] == nil {
		nd.subs[topic] = map[*subscription]struct{}{}
	}
	nd.subs[topic][s] = struct{}{}
	first := len(nd.subs[topic]) == 1
	nd.mu.Unlock()
	if first {
		nd.subscriptionsChanged()
	}
	out := make(chan sdk.PubsubMessage)
	go func() {
		defer close(out)
		defer func() {
			nd.mu.Lock()
			delete(nd.subs[topic], s)
			last := len(nd.subs[topic]) == 0
			if last {
				delete(nd.subs, topic)
			}
			nd.mu.Unlock()
			if last {
				nd.subscriptionsChanged()
			}
		}()
		forward(ctx, s, out)
	}()
	return out, nil
}

// receive queues a delivered message on each of the node's subscriptions
// to topic; it returns how many took it and how many overflowed.
func (nd *Node) receive(from, topic string, data []byte) (delivered, overflow int) {
	nd.mu.Lock()
	subs := make([]*subscription, 0, len(nd.subs[topic]))
	for s := range nd.subs[topic] {
		subs = append(subs, s)
	}
	nd.mu.Unlock()
	for _, s := range subs {
		if s.Push(sdk.PubsubMessage{Topic: topic, From: from, Data: data}) {
			delivered++
		} else {
			overflow++
		}
	}
	return delivered, overflow
}

// Connect implements sdk.Network: p.ID is the peer's node ID.
func (nd *Node) Connect(_ context.Context, p sdk.PeerInfo) error {
	n := nd.net
	n.mu.Lock()
	if n.nodes[p.ID] == nil {
		n.mu.Unlock()
		return fmt.Errorf("connect %q: %w", p.ID, ErrUnknownPeer)
	}
	// Only this pair can change: re-check it, not the whole network (a
	// messenger connects to every group peer it hears of).
	pr := mkpair(nd.id, p.ID)
	n.conns[pr] = true
	live := n.liveLocked(nd.id, p.ID)
	ev := n.recheckLocked(pr, nil)
	n.mu.Unlock()
	n.emit(ev)
	if !live {
		return fmt.Errorf("connect %q: %w", p.ID, ErrUnreachable)
	}
	return nil
}

// Peers implements sdk.Network: the peers with a live connection.
func (nd *Node) Peers(context.Context) ([]sdk.PeerInfo, error) {
	var out []sdk.PeerInfo
	for _, p := range nd.net.livePeers(nd.id) {
		out = append(out, sdk.PeerInfo{ID: p.id, Addrs: p.Addrs()})
	}
	return out, nil
}

// Provide implements sdk.Network: a content-routing record that
// FindProviders of other nodes finds without a connection (as a DHT would).
func (nd *Node) Provide(_ context.Context, raw []byte) error {
	c, err := cid.Cast(raw)
	if err != nil {
		return fmt.Errorf("provide: bad cid: %w", err)
	}
	n := nd.net
	n.mu.Lock()
	defer n.mu.Unlock()
	k := c.KeyString()
	if n.provided[k] == nil {
		n.provided[k] = map[string]bool{}
	}
	n.provided[k][nd.id] = true
	return nil
}

// FindProviders implements sdk.Network: the live peers that hold the
// block, then the nodes that provided it and that a lookup reaches (up, on
// this side of any partition, not blocked: no connection needed).
func (nd *Node) FindProviders(_ context.Context, raw []byte) (<-chan sdk.PeerInfo, error) {
	c, err := cid.Cast(raw)
	if err != nil {
		return nil, fmt.Errorf("find providers: bad cid: %w", err)
	}
	var found []sdk.PeerInfo
	seen := map[string]bool{}
	for _, p := range nd.net.livePeers(nd.id) {
		if _, ok := p.local(c.KeyString()); ok {
			found = append(found, sdk.PeerInfo{ID: p.id, Addrs: p.Addrs()})
			seen[p.id] = true
		}
	}
	n := nd.net
	n.mu.Lock()
	for _, id := range n.order {
		if n.provided[c.KeyString()][id] && !seen[id] && n.routableLocked(nd.id, id) {
			found = append(found, sdk.PeerInfo{ID: id, Addrs: n.nodes[id].Addrs()})
		}
	}
	n.mu.Unlock()
	out := make(chan sdk.PeerInfo, len(found))
	for _, p := range found {
		out <- p
	}
	close(out)
	return out, nil
}

// PeerEvents implements sdk.PeerNotifier.
func (nd *Node) PeerEvents(ctx context.Context) (<-chan sdk.PeerEvent, error) {
	s := queue.New[sdk.PeerEvent](0)
	nd.mu.Lock()
	if !nd.up {
		nd.mu.Unlock()
		return nil, ErrStopped
	}
	nd.streams[s] = struct{}{}
	nd.mu.Unlock()
	// Peers live now are reported first; a transition racing with this
	// may be reported twice, which consumers tolerate.
	for _, p := range nd.net.livePeers(nd.id) {
		s.Push(sdk.PeerEvent{Peer: p.id, Connected: true})
	}
	out := make(chan sdk.PeerEvent)
	go func() {
		defer close(out)
		defer func() {
			nd.mu.Lock()
			delete(nd.streams, s)
			nd.mu.Unlock()
		}()
		forward(ctx, s, out)
	}()
	return out, nil
}

func (nd *Node) peerEvent(peer string, connected bool) {
	nd.mu.Lock()
	streams := make([]*eventStream, 0, len(nd.streams))
	for s := range nd.streams {
		streams = append(streams, s)
	}
	nd.mu.Unlock()
	for _, s := range streams {
		s.Push(sdk.PeerEvent{Peer: peer, Connected: connected})
	}
	nd.refreshTopicStreams()
}

// HandleRequests implements sdk.DirectMessenger.
func (nd *Node) HandleRequests(protocol string, h sdk.RequestHandler) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if h == nil {
		delete(nd.handlers, protocol)
	} else {
		nd.handlers[protocol] = h
	}
	return nil
}

// Request implements sdk.DirectMessenger: one round trip over a live
// connection; the peer's handler sees this node's ID as from.
func (nd *Node) Request(ctx context.Context, peer, protocol string, request []byte) ([]byte, error) {
	n := nd.net
	n.mu.Lock()
	target := n.nodes[peer]
	live := n.liveLocked(nd.id, peer)
	lat := n.linkLocked(nd.id, peer).Latency
	n.mu.Unlock()
	if target == nil {
		return nil, fmt.Errorf("request %s to %q: %w", protocol, peer, ErrUnknownPeer)
	}
	if !live {
		return nil, fmt.Errorf("request %s to %q: %w", protocol, peer, ErrUnreachable)
	}
	target.mu.Lock()
	h := target.handlers[protocol]
	target.mu.Unlock()
	if h == nil {
		return nil, fmt.Errorf("request %s to %q: %w", protocol, peer, ErrNoHandler)
	}
	if !sleep(ctx, lat) {
		return nil, fmt.Errorf("request %s to %q: %w", protocol, peer, ctx.Err())
	}
	resp, err := h(ctx, nd.id, bytes.Clone(request))
	if err != nil {
		return nil, fmt.Errorf("request %s to %q: refused: %w", protocol, peer, err)
	}
	if !sleep(ctx, lat) {
		return nil, fmt.Errorf("request %s to %q: %w", protocol, peer, ctx.Err())
	}
	if _, live := n.latency(nd.id, peer); !live {
		return nil, fmt.Errorf("request %s to %q: %w", protocol, peer, ErrUnreachable)
	}
	n.stats.requests.Add(1)
	nd.counters.requests.Add(1)
	target.counters.answered.Add(1)
	nd.traffic.sent.Add(uint64(len(request)))
	nd.traffic.received.Add(uint64(len(resp)))
	target.traffic.received.Add(uint64(len(request)))
	target.traffic.sent.Add(uint64(len(resp)))
	return bytes.Clone(resp), nil
}

// BlockPeer implements sdk.PeerBlocker: the connection to peer goes down
// and stays down for d.
func (nd *Node) BlockPeer(_ context.Context, peer string, reason string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("block peer %q: duration must be positive", peer)
	}
	nd.mu.Lock()
	nd.blocked[peer] = time.Now().Add(d)
	nd.mu.Unlock()
	slog.Debug("simnet: peer blocked", "node", nd.id, "peer", peer, "reason", reason, "for", d)
	nd.net.recompute()
	time.AfterFunc(d, nd.net.recompute)
	return nil
}

// Blocked reports whether this node currently refuses peer.
func (nd *Node) Blocked(peer string) bool { return nd.blocks(peer) }

// subscription queues pubsub messages for one subscriber, dropping beyond
// the network's queue size; eventStream queues peer events without bound.
type (
	subscription = queue.Queue[sdk.PubsubMessage]
	eventStream  = queue.Queue[sdk.PeerEvent]
)

// forward feeds q to out until ctx ends or q stops, then stops q.
func forward[T any](ctx context.Context, q *queue.Queue[T], out chan<- T) {
	defer q.Stop()
	q.Forward(ctx, out)
}

// Subscribed reports whether the node has a live subscription to topic.
func (nd *Node) Subscribed(topic string) bool { return nd.subscribed(topic) }
