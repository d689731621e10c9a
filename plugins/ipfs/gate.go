package ipfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/skein-p2p/skein/sdk"
)

var _ sdk.TopicGate = (*Network)(nil)

// Closed topics (sdk.TopicGate).
//
// A peer not admitted to a closed topic is, as far as the topic goes,
// treated exactly like a peer of a node that does not subscribe to it:
//
//   - gossipsub's peer filter keeps it out of the topic's mesh and fanout,
//     and out of gossip (IHAVE sent, IWANT answered, IHAVE heeded) and
//     GRAFTs (ignored without a PRUNE, as for a topic this node does not
//     know);
//   - every RPC this node's gossipsub writes to it passes through
//     gatedStream, which strips what names the topic: the subscription
//     (in the hello and in later announcements), messages (flood
//     publishing and forwarding ignore the peer filter), IHAVE, GRAFT and
//     PRUNE. A stripped subscription is remembered and sent the moment the
//     peer is admitted, so two members admitting each other a few
//     milliseconds apart still mesh within a heartbeat;
//   - the messages it sends on the topic are dropped as they arrive,
//     before gossipsub's seen-cache and validation (so they can neither
//     reach the node's validator nor censor an honest copy), and each costs
//     it unsolicitedPenalty of application score, exactly as a message on
//     a topic this node does not subscribe to does: the penalty is no
//     oracle of membership. An honest peer never sends either (gossipsub
//     sends a topic's messages only to peers that announced it), so a
//     peer that does is flooding.
//
// What such a peer can still see: that this node speaks gossipsub (in
// identify, as every node does) and opens a pubsub stream to it, as to
// every peer; nothing is written on it for the topic. Its own
// subscriptions are kept as gossipsub keeps any peer's (they say
// something about the peer, nothing about this node), so that admitting
// it later needs no new announcement from it.
//
// Admission is per connection: it ends when the peer's last connection
// closes (a network.Notifiee sees each connection close). Evicting an
// admitted peer (AdmitPeer false) resets its pubsub streams both ways, so
// gossipsub forgets its mesh links and both sides start over from a hello
// that no longer names the topic (the two new streams are opened in an
// order that keeps either hello from being forgotten: pubsubHost.NewStream).
// Gossipsub reopens its stream to a peer
// still connected at most 4 times in 10 minutes (its dead-peer backoff):
// a peer evicted more often than that, and still connected, gets no
// pubsub traffic from this node until it reconnects.

// unsolicitedPenalty is the application score a peer loses for each
// pubsub message on a topic this node has not announced to it (a closed
// topic it is not admitted to, or a topic this node does not subscribe
// to): after 20 its gossip is ignored, after 160 (by default) it is cut
// off.
const unsolicitedPenalty = 1

// ErrTopicNotClosed is returned by AdmitPeer for a topic that CloseTopic
// has not closed; the error also wraps sdk.ErrInvalidArgument.
var ErrTopicNotClosed = errors.New("network.ipfs: topic is not closed")

// topicGate holds the closed topics and who is admitted to them.
type topicGate struct {
	// anyClosed is set by the first CloseTopic: until then gatedStream
	// passes every frame through without decoding it.
	anyClosed atomic.Bool

	mu     sync.RWMutex
	closed map[string]bool
	// admitted: the topics each peer is admitted to, and the peer's
	// connections that keep the admission alive.
	admitted map[peer.ID]*admission
	// streams are gossipsub's outbound streams to each peer.
	streams map[peer.ID]map[*gatedStream]struct{}
	// subscribed counts this node's subscriptions per topic (Subscribe),
	// to tell solicited messages from unsolicited ones.
	subscribed map[string]int
	// restarting: peers whose pubsub streams an eviction reset, until both
	// new streams are open (see pubsubHost.NewStream).
	restarting map[peer.ID]*restart
}

// restart orders the two new pubsub streams with a peer after an eviction
// reset the old ones.
type restart struct {
	outOnce, inOnce sync.Once
	out             chan struct{} // closed when gossipsub opens its stream to the peer
	in              chan struct{} // closed when the peer's stream arrives
}

type admission struct {
	topics map[string]bool
	conns  map[network.Conn]bool
}

func newTopicGate() *topicGate {
	return &topicGate{
		closed:     map[string]bool{},
		admitted:   map[peer.ID]*admission{},
		streams:    map[peer.ID]map[*gatedStream]struct{}{},
		subscribed: map[string]int{},
		restarting: map[peer.ID]*restart{},
	}
}

// reset forgets admissions and streams (the host they belonged to is
// gone); closed topics stay closed, and the subscriptions of the run that
// ended uncount themselves as they end.
func (g *topicGate) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.admitted = map[peer.ID]*admission{}
	g.streams = map[peer.ID]map[*gatedStream]struct{}{}
	for _, r := range g.restarting {
		r.outOnce.Do(func() { close(r.out) })
		r.inOnce.Do(func() { close(r.in) })
	}
	g.restarting = map[peer.ID]*restart{}
}

// restart records that p's pubsub streams are about to be reset (an
// eviction); pubsubHost orders the new streams.
func (g *topicGate) restart(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.restarting[p] == nil {
		g.restarting[p] = &restart{out: make(chan struct{}), in: make(chan struct{})}
	}
}

func (g *topicGate) restartOf(p peer.ID) *restart {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.restarting[p]
}

func (g *topicGate) restarted(p peer.ID, r *restart) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.restarting[p] == r {
		delete(g.restarting, p)
	}
}

// restartWait bounds each wait of the restart order (a peer that does not
// reopen its stream, or does so late, gets this node's hello then).
const restartWait = 2 * time.Second

// waitRestart waits for ch, at most restartWait, or until ctx ends.
func waitRestart(ctx context.Context, ch <-chan struct{}) error {
	t := time.NewTimer(restartWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (g *topicGate) close(topic string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed[topic] = true
	g.anyClosed.Store(true)
}

func (g *topicGate) isClosed(topic string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.closed[topic]
}

// hidden reports whether topic is closed to p.
func (g *topicGate) hidden(p peer.ID, topic string) bool {
	if !g.anyClosed.Load() {
		return false
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.hiddenLocked(p, topic)
}

func (g *topicGate) hiddenLocked(p peer.ID, topic string) bool {
	if !g.closed[topic] {
		return false
	}
	a := g.admitted[p]
	return a == nil || !a.topics[topic]
}

// allowed is gossipsub's peer filter.
func (g *topicGate) allowed(p peer.ID, topic string) bool { return !g.hidden(p, topic) }

// solicited reports whether p may send messages on topic: this node
// subscribes to it and has announced it to p.
func (g *topicGate) solicited(p peer.ID, topic string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.subscribed[topic] > 0 && !g.hiddenLocked(p, topic)
}

func (g *topicGate) subscribe(topic string, delta int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.subscribed[topic] += delta
	if g.subscribed[topic] <= 0 {
		delete(g.subscribed, topic)
	}
}

// admit records p's admission to topic with the connections it has now;
// it fails when p has none.
func (g *topicGate) admit(p peer.ID, topic string, conns []network.Conn) ([]*gatedStream, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed[topic] {
		return nil, fmt.Errorf("admit %s to %q: %w (%w)", p, topic, ErrTopicNotClosed, sdk.ErrInvalidArgument)
	}
	if len(conns) == 0 {
		return nil, fmt.Errorf("admit %s to %q: not connected: %w", p, topic, sdk.ErrNotFound)
	}
	a := g.admitted[p]
	if a == nil {
		a = &admission{topics: map[string]bool{}, conns: map[network.Conn]bool{}}
		g.admitted[p] = a
	}
	for _, c := range conns {
		a.conns[c] = true
	}
	if a.topics[topic] {
		return nil, nil
	}
	a.topics[topic] = true
	out := make([]*gatedStream, 0, len(g.streams[p]))
	for s := range g.streams[p] {
		out = append(out, s)
	}
	return out, nil
}

// evict ends p's admission to topic; it reports whether p was admitted.
func (g *topicGate) evict(p peer.ID, topic string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.admitted[p]
	if a == nil || !a.topics[topic] {
		return false
	}
	delete(a.topics, topic)
	if len(a.topics) == 0 {
		delete(g.admitted, p)
	}
	return true
}

// connected and disconnected keep the connection sets of admitted peers
// (network.Notifiee). libp2p calls Disconnected for a connection only
// after its Connected has returned.
func (g *topicGate) connected(c network.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a := g.admitted[c.RemotePeer()]; a != nil {
		a.conns[c] = true
	}
}

func (g *topicGate) disconnected(c network.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := c.RemotePeer()
	a := g.admitted[p]
	if a == nil {
		return
	}
	delete(a.conns, c)
	if len(a.conns) == 0 {
		delete(g.admitted, p) // the last connection closed: admission ends
	}
}

func (g *topicGate) addStream(s *gatedStream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.streams[s.peer]
	if m == nil {
		m = map[*gatedStream]struct{}{}
		g.streams[s.peer] = m
	}
	m[s] = struct{}{}
}

func (g *topicGate) removeStream(s *gatedStream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m := g.streams[s.peer]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(g.streams, s.peer)
		}
	}
}

// gateNotifiee feeds connection events to the gate.
type gateNotifiee struct{ g *topicGate }

func (n gateNotifiee) Connected(_ network.Network, c network.Conn)    { n.g.connected(c) }
func (n gateNotifiee) Disconnected(_ network.Network, c network.Conn) { n.g.disconnected(c) }
func (gateNotifiee) Listen(network.Network, ma.Multiaddr)             {}
func (gateNotifiee) ListenClose(network.Network, ma.Multiaddr)        {}

// pubsubHost is the host gossipsub sees: the real one, except that the
// streams gossipsub opens pass what it writes through the gate.
type pubsubHost struct {
	host.Host
	g      *topicGate
	logger interface {
		Error(msg string, args ...any)
	}
}

// NewStream opens gossipsub's stream to p.
//
// After an eviction reset both of gossipsub's streams with p, the two new
// streams are ordered. Gossipsub forgets a peer's subscriptions when it
// finds its stream to the peer dead, and only then opens a new one, with a
// hello naming its own subscriptions. A hello that arrives before the
// other side has found out is forgotten with the rest, and the two would
// not learn each other's subscriptions again (nor mesh) until a reconnect.
// So this node's new stream to p waits until p's new stream has arrived (p
// opens it after forgetting), and p's new stream is not read until this
// node has opened its own (gossipsub calls NewStream after forgetting).
// Each wait is bounded by restartWait.
func (h pubsubHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if r := h.g.restartOf(p); r != nil {
		r.outOnce.Do(func() { close(r.out) })
		if err := waitRestart(ctx, r.in); err != nil {
			return nil, err
		}
		h.g.restarted(p, r)
	}
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	gs := &gatedStream{Stream: s, g: h.g, peer: p, logger: h.logger, withheld: map[string]*pb.RPC_SubOpts{}}
	h.g.addStream(gs)
	return gs, nil
}

// SetStreamHandler registers gossipsub's handler for the streams peers
// open to this node (ordered after an eviction: see NewStream).
func (h pubsubHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) {
		if r := h.g.restartOf(s.Conn().RemotePeer()); r != nil {
			_ = waitRestart(context.Background(), r.out)
			r.inOnce.Do(func() { close(r.in) })
		}
		handler(s)
	})
}

// gatedStream is one of gossipsub's outbound streams. Gossipsub writes
// each RPC as one length-prefixed frame; Write reassembles frames (in
// case a write ever carries less or more than one) and passes each
// through filter.
type gatedStream struct {
	network.Stream
	g      *topicGate
	peer   peer.ID
	logger interface {
		Error(msg string, args ...any)
	}

	mu  sync.Mutex
	buf []byte // an incomplete frame
	// withheld is the last subscription change stripped per closed topic,
	// sent when the peer is admitted.
	withheld map[string]*pb.RPC_SubOpts
}

// maxGatedFrame bounds a frame gossipsub writes (its own limit is
// pubsub.DefaultMaxMessageSize); a larger length prefix means the stream
// is not what gatedStream expects, and it fails closed.
const maxGatedFrame = 4 << 20

func (s *gatedStream) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.g.anyClosed.Load() && len(s.buf) == 0 {
		return s.Stream.Write(b)
	}
	s.buf = append(s.buf, b...)
	for {
		size, k := binary.Uvarint(s.buf)
		if k == 0 {
			return len(b), nil // the length prefix is incomplete
		}
		if k < 0 || size > maxGatedFrame {
			s.buf = nil
			_ = s.Stream.Reset()
			return 0, fmt.Errorf("gated pubsub stream: bad frame length prefix")
		}
		end := k + int(size)
		if len(s.buf) < end {
			return len(b), nil
		}
		out, err := s.filter(s.buf[:end], s.buf[k:end])
		if err != nil {
			s.logger.Error("gated pubsub stream: cannot decode an outgoing RPC; resetting the stream", "peer", s.peer.String(), "err", err)
			s.buf = nil
			_ = s.Stream.Reset()
			return 0, err
		}
		if len(out) > 0 {
			if _, err := s.Stream.Write(out); err != nil {
				s.buf = nil
				return 0, err
			}
		}
		s.buf = s.buf[end:]
		if len(s.buf) == 0 {
			s.buf = nil
			return len(b), nil
		}
	}
}

// filter returns frame without what names a topic closed to the peer, or
// nil when nothing is left.
func (s *gatedStream) filter(frame, body []byte) ([]byte, error) {
	if !s.g.anyClosed.Load() {
		return frame, nil
	}
	var rpc pb.RPC
	if err := proto.Unmarshal(body, &rpc); err != nil {
		return nil, err
	}
	s.g.mu.RLock()
	hidden := func(topic string) bool { return s.g.hiddenLocked(s.peer, topic) }
	changed := false
	keep := func(topic string) bool {
		if hidden(topic) {
			changed = true
			return false
		}
		return true
	}
	subs := rpc.Subscriptions[:0]
	for _, sub := range rpc.Subscriptions {
		t := sub.GetTopicid()
		if keep(t) {
			delete(s.withheld, t)
			subs = append(subs, sub)
		} else {
			s.withheld[t] = sub
		}
	}
	rpc.Subscriptions = subs
	rpc.Publish = slices.DeleteFunc(rpc.Publish, func(m *pb.Message) bool { return !keep(m.GetTopic()) })
	if c := rpc.Control; c != nil {
		c.Ihave = slices.DeleteFunc(c.Ihave, func(x *pb.ControlIHave) bool { return !keep(x.GetTopicID()) })
		c.Graft = slices.DeleteFunc(c.Graft, func(x *pb.ControlGraft) bool { return !keep(x.GetTopicID()) })
		c.Prune = slices.DeleteFunc(c.Prune, func(x *pb.ControlPrune) bool { return !keep(x.GetTopicID()) })
		if proto.Size(c) == 0 {
			rpc.Control = nil
		}
	}
	if rpc.Partial != nil && !keep(rpc.Partial.GetTopicID()) {
		rpc.Partial = nil
	}
	s.g.mu.RUnlock()
	if !changed {
		return frame, nil
	}
	return marshalFrame(&rpc)
}

// replay sends the subscription to topic withheld from the peer before it
// was admitted, unless it is hidden again by now.
func (s *gatedStream) replay(topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.withheld[topic]
	if sub == nil || s.g.hidden(s.peer, topic) {
		return
	}
	delete(s.withheld, topic)
	if !sub.GetSubscribe() {
		return // it never learnt of the subscription that ended
	}
	frame, err := marshalFrame(&pb.RPC{Subscriptions: []*pb.RPC_SubOpts{sub}})
	if err == nil {
		_, err = s.Stream.Write(frame)
	}
	if err != nil {
		_ = s.Stream.Reset() // gossipsub notices and starts over
	}
}

func (s *gatedStream) Close() error {
	s.g.removeStream(s)
	return s.Stream.Close()
}

func (s *gatedStream) Reset() error {
	s.g.removeStream(s)
	return s.Stream.Reset()
}

func marshalFrame(rpc *pb.RPC) ([]byte, error) {
	size := proto.Size(rpc)
	if size == 0 {
		return nil, nil
	}
	buf := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+size), uint64(size))
	return proto.MarshalOptions{}.MarshalAppend(buf, rpc)
}

// inspectRPC is gossipsub's RPC inspector: it runs on every RPC a peer
// sends, before anything in it is acted on, and drops the messages on
// topics this node has not announced to the peer. Each such message costs
// the sender unsolicitedPenalty, and so does each message of a peer that
// goes on publishing while graylisted (gossipsub then ignores its RPCs,
// so no validator can judge them any more, and its score would only
// recover): a flooder below the graylist threshold is cut off too.
func (n *Network) inspectRPC(sc *scoring) func(peer.ID, *pubsub.RPC) error {
	return func(from peer.ID, rpc *pubsub.RPC) error {
		if len(rpc.Publish) == 0 {
			return nil
		}
		dropped := 0
		rpc.Publish = slices.DeleteFunc(rpc.Publish, func(m *pb.Message) bool {
			if n.gate.solicited(from, m.GetTopic()) {
				return false
			}
			dropped++
			return true
		})
		penalty, why := dropped, "unsolicited pubsub messages"
		if dropped > 0 {
			n.unsolicited.Add(uint64(dropped))
		}
		if len(rpc.Publish) > 0 && sc.graylisted(from) {
			penalty, why = penalty+len(rpc.Publish), "pubsub messages while graylisted"
		}
		if penalty == 0 {
			return nil
		}
		if v, low := n.penalise(sc, from, -float64(penalty*unsolicitedPenalty), why); low {
			// Not from gossipsub's event loop: BlockPeer closes connections.
			go n.cutOff(context.Background(), sc, from, v, why)
		}
		return nil
	}
}

// CloseTopic implements sdk.TopicGate. Call it before the topic is
// subscribed to or published on.
func (n *Network) CloseTopic(_ context.Context, topic string) error {
	if topic == "" {
		return fmt.Errorf("close topic: empty topic: %w", sdk.ErrInvalidArgument)
	}
	n.gate.close(topic)
	return nil
}

// AdmitPeer implements sdk.TopicGate.
func (n *Network) AdmitPeer(_ context.Context, topic, p string, admit bool) error {
	h, _, _, err := n.running()
	if err != nil {
		return err
	}
	id, err := peer.Decode(p)
	if err != nil {
		return fmt.Errorf("admit peer: bad peer id %q: %w: %v", p, sdk.ErrInvalidArgument, err)
	}
	if !admit {
		if n.gate.evict(id, topic) {
			n.logger.Debug("peer evicted from closed topic", "peer", p, "topic", topic)
			n.gate.restart(id)
			resetPubsubStreams(h, id)
		}
		return nil
	}
	streams, err := n.gate.admit(id, topic, h.Network().ConnsToPeer(id))
	if err != nil {
		return err
	}
	for _, s := range streams {
		go s.replay(topic) // a write may block on a slow peer
	}
	return nil
}

// resetPubsubStreams resets every gossipsub stream with p, both ways:
// gossipsub drops the peer's topic state and mesh links, and opens a new
// stream (with a new hello) while the peer is still connected.
func resetPubsubStreams(h host.Host, p peer.ID) {
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if slices.Contains(pubsub.GossipSubDefaultProtocols, s.Protocol()) {
				_ = s.Reset()
			}
		}
	}
}
