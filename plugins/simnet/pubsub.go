package simnet

import (
	"slices"
	"time"
)

// PubsubMode says how a published message reaches the subscribers.
type PubsubMode int

const (
	// PubsubAuto (the default) is PubsubMesh while the network has more
	// than MeshThreshold nodes, else PubsubFlood.
	PubsubAuto PubsubMode = iota
	// PubsubFlood: the publisher sends one copy to every live subscriber
	// (From is always the publisher; nothing is relayed).
	PubsubFlood
	// PubsubMesh models gossipsub: each node keeps, per topic, a mesh of
	// about D live subscribed peers; the publisher sends to all its live
	// subscribed peers (flood publishing, gossipsub's default), every
	// node forwards a message it has not seen to its mesh, and each
	// heartbeat a node gossips the ids of recent messages (IHAVE) to
	// Dlazy other subscribed peers, which ask (IWANT) for those they lack.
	// From is the peer a copy came from, which may be a relay.
	PubsubMesh
)

// MeshThreshold is the node count above which PubsubAuto uses the mesh.
const MeshThreshold = 20

// MeshParams are the mesh's parameters (gossipsub's names and defaults).
type MeshParams struct {
	D, Dlo, Dhi int // mesh degree and its bounds (6, 4, 12)
	Dlazy       int // peers gossiped to each heartbeat (6)
	// Heartbeat is the period of mesh maintenance and gossip (1 s).
	Heartbeat time.Duration
	// History is how many heartbeats a message is gossiped for (3).
	History int
}

// DefaultMeshParams returns gossipsub's defaults.
func DefaultMeshParams() MeshParams {
	return MeshParams{D: 6, Dlo: 4, Dhi: 12, Dlazy: 6, Heartbeat: time.Second, History: 3}
}

// WithPubsub sets how messages reach subscribers (default PubsubAuto).
func WithPubsub(mode PubsubMode) Option { return func(n *Network) { n.mode = mode } }

// WithMesh sets the mesh's parameters; zero fields keep their defaults.
func WithMesh(p MeshParams) Option {
	return func(n *Network) {
		d := DefaultMeshParams()
		if p.D > 0 {
			d.D = p.D
		}
		if p.Dlo > 0 {
			d.Dlo = p.Dlo
		}
		if p.Dhi > 0 {
			d.Dhi = p.Dhi
		}
		if p.Dlazy > 0 {
			d.Dlazy = p.Dlazy
		}
		if p.Heartbeat > 0 {
			d.Heartbeat = p.Heartbeat
		}
		if p.History > 0 {
			d.History = p.History
		}
		d.Dlo, d.Dhi = min(d.Dlo, d.D), max(d.Dhi, d.D)
		n.meshParams = d
	}
}

// WithValidator makes every node check each pubsub message it receives
// before delivering or forwarding it (as gossipsub validators do); a
// message failing it is dropped and counted in Stats.Rejected. With a
// validator, or in PubsubFlood mode, Node.PubsubValidated reports true.
func WithValidator(v func(topic string, data []byte) error) Option {
	return func(n *Network) { n.validator = v }
}

// envelope is one published message; copies on links share it.
type envelope struct {
	origin string
	seq    uint64 // per origin
	topic  string
	data   []byte
}

type msgKey struct {
	origin string
	seq    uint64
}

// nodePubsub is a node's mesh state, under Network.mu.
type nodePubsub struct {
	seq  uint64
	mesh map[string]map[string]struct{} // topic -> mesh peers
	seen map[string]*seenWindow         // origin -> seqs seen
	// cache holds the messages seen in the last History heartbeats
	// (newest window first), for gossip and IWANT.
	cache []map[msgKey]*envelope
}

func newNodePubsub() nodePubsub {
	return nodePubsub{mesh: map[string]map[string]struct{}{}, seen: map[string]*seenWindow{},
		cache: []map[msgKey]*envelope{{}}}
}

// seenWindow remembers which of an origin's last 256 sequence numbers
// arrived: 40 bytes per origin, however many messages it sends. Anything
// older than the window counts as seen (gossipsub's seen cache expires
// too).
type seenWindow struct {
	max  uint64
	bits [4]uint64 // bit i: seq max-i arrived
}

// mark records seq and reports whether it was seen before.
func (w *seenWindow) mark(seq uint64) bool {
	if seq > w.max {
		w.shift(seq - w.max)
		w.max = seq
		w.bits[0] |= 1
		return false
	}
	d := w.max - seq
	if d >= 256 {
		return true
	}
	word, bit := d/64, d%64
	if w.bits[word]&(1<<bit) != 0 {
		return true
	}
	w.bits[word] |= 1 << bit
	return false
}

func (w *seenWindow) has(seq uint64) bool {
	if seq > w.max {
		return false
	}
	d := w.max - seq
	return d >= 256 || w.bits[d/64]&(1<<(d%64)) != 0
}

// shift moves every bit k places up (older), dropping what falls out.
func (w *seenWindow) shift(k uint64) {
	if k >= 256 {
		w.bits = [4]uint64{}
		return
	}
	words, b := int(k/64), k%64
	var out [4]uint64
	for i := 3; i >= words; i-- {
		src := i - words
		v := w.bits[src] << b
		if b > 0 && src > 0 {
			v |= w.bits[src-1] >> (64 - b)
		}
		out[i] = v
	}
	w.bits = out
}

func (ps *nodePubsub) seenOrMark(e *envelope) bool {
	w := ps.seen[e.origin]
	if w == nil {
		w = &seenWindow{}
		ps.seen[e.origin] = w
	}
	if w.mark(e.seq) {
		return true
	}
	ps.cache[0][msgKey{e.origin, e.seq}] = e
	return false
}

func (ps *nodePubsub) hasSeen(k msgKey) bool {
	w := ps.seen[k.origin]
	return w != nil && w.has(k.seq)
}

func (ps *nodePubsub) cached(k msgKey) *envelope {
	for _, w := range ps.cache {
		if e := w[k]; e != nil {
			return e
		}
	}
	return nil
}

// meshModeLocked reports whether messages go through the mesh now.
func (n *Network) meshModeLocked() bool {
	switch n.mode {
	case PubsubFlood:
		return false
	case PubsubMesh:
		return true
	default:
		return len(n.nodes) > MeshThreshold
	}
}

// publish sends a node's message: to every live subscribed peer (flood
// publishing), remembering it as seen so that copies coming back are
// dropped.
func (n *Network) publish(from *Node, topic string, data []byte) {
	tc := n.topics.get(topic)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.stats.published.Add(1)
	tc.published.Add(1)
	from.counters.published.Add(1)
	from.ps.seq++
	e := &envelope{origin: from.id, seq: from.ps.seq, topic: topic, data: data}
	if n.meshModeLocked() {
		from.ps.seenOrMark(e)
	}
	for _, to := range n.livePeersLocked(from.id) {
		if to.subscribed(topic) {
			n.sendLocked(from, to, e, tc)
		}
	}
}

// sendLocked puts one copy of e on the link from -> to: lost with the
// link's loss, else arriving after its latency (and jitter), never before
// an earlier copy on the same link.
func (n *Network) sendLocked(from, to *Node, e *envelope, tc *topicCounters) {
	l := n.linkLocked(from.id, to.id)
	r := n.rngLocked(from.id, to.id)
	n.stats.sent.Add(1)
	tc.sent.Add(1)
	from.counters.sent.Add(1)
	from.traffic.sent.Add(uint64(len(e.data)))
	if l.Loss > 0 && r.Float64() < l.Loss {
		n.stats.lost.Add(1)
		tc.lost.Add(1)
		from.counters.lost.Add(1)
		return
	}
	at := n.arrivalLocked(from.id, to.id, l, r)
	at = n.admitLocked(from.id, to.id, time.Now(), at, len(e.data), l.Bandwidth)
	n.schedFor(to).at(at, func() { n.arrive(from, to, e, tc) })
}

// arrivalLocked returns when something sent now from -> to arrives,
// keeping the link's order.
func (n *Network) arrivalLocked(from, to string, l Link, r interface{ Int64N(int64) int64 }) time.Time {
	at := time.Now().Add(l.Latency)
	if l.Jitter > 0 {
		at = at.Add(time.Duration(r.Int64N(int64(l.Jitter))))
	}
	k := dirLink{from, to}
	if last := n.lastAt[k]; at.Before(last) {
		at = last
	}
	n.lastAt[k] = at
	return at
}

// arrive handles a copy that crossed its link: dropped if the link went
// down meanwhile; in the mesh, dropped if seen before, else forwarded to
// the receiver's mesh; then handed to the receiver's subscribers.
func (n *Network) arrive(from, to *Node, e *envelope, tc *topicCounters) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	if !n.liveLocked(from.id, to.id) {
		n.stats.lost.Add(1)
		tc.lost.Add(1)
		from.counters.lost.Add(1)
		n.mu.Unlock()
		return
	}
	n.stats.received.Add(1)
	to.counters.received.Add(1)
	to.traffic.received.Add(uint64(len(e.data)))
	mesh := n.meshModeLocked()
	if mesh && to.ps.seenOrMark(e) {
		n.stats.duplicate.Add(1)
		tc.duplicate.Add(1)
		to.counters.duplicate.Add(1)
		n.mu.Unlock()
		return
	}
	if n.validator != nil && n.validator(e.topic, e.data) != nil {
		n.stats.rejected.Add(1)
		n.mu.Unlock()
		return
	}
	subscribed := to.subscribed(e.topic)
	if mesh && subscribed {
		for _, p := range n.meshLocked(to, e.topic) {
			if p != from && p.id != e.origin {
				n.sendLocked(to, p, e, tc)
			}
		}
	}
	n.mu.Unlock()
	if !subscribed {
		return
	}
	d, o := to.receive(from.id, e.topic, e.data)
	n.stats.delivered.Add(uint64(d))
	n.stats.overflow.Add(uint64(o))
	tc.delivered.Add(uint64(d))
	tc.overflow.Add(uint64(o))
	to.counters.delivered.Add(uint64(d))
	to.counters.overflow.Add(uint64(o))
}

// meshLocked returns nd's mesh peers for topic after maintaining it: peers
// gone (down, cut, unsubscribed) leave; below Dlo it grafts live
// subscribed peers up to D (who add nd back unless at Dhi); above Dhi it
// prunes down to D.
func (n *Network) meshLocked(nd *Node, topic string) []*Node {
	p := n.meshParams
	set := nd.ps.mesh[topic]
	if set == nil {
		set = map[string]struct{}{}
		nd.ps.mesh[topic] = set
	}
	for id := range set {
		if !n.liveLocked(nd.id, id) || !n.nodes[id].subscribed(topic) {
			delete(set, id)
		}
	}
	if len(set) < p.Dlo {
		var cands []*Node
		for _, c := range n.livePeersLocked(nd.id) {
			if _, in := set[c.id]; !in && c.subscribed(topic) {
				cands = append(cands, c)
			}
		}
		n.meshRng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		for _, c := range cands {
			if len(set) >= p.D {
				break
			}
			set[c.id] = struct{}{}
			back := c.ps.mesh[topic]
			if back == nil {
				back = map[string]struct{}{}
				c.ps.mesh[topic] = back
			}
			if len(back) < p.Dhi {
				back[nd.id] = struct{}{}
			}
		}
	}
	if len(set) > p.Dhi {
		ids := sortedKeys(set)
		n.meshRng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for _, id := range ids[p.D:] {
			delete(set, id)
			delete(n.nodes[id].ps.mesh[topic], nd.id)
		}
	}
	out := make([]*Node, 0, len(set))
	for id := range set {
		out = append(out, n.nodes[id])
	}
	slices.SortFunc(out, func(a, b *Node) int { return n.index[a.id] - n.index[b.id] })
	return out
}

// heartbeat maintains every mesh and gossips recent message ids, then ages
// the message caches; it reschedules itself.
func (n *Network) heartbeat() {
	p := n.meshParams
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	if n.meshModeLocked() {
		for _, id := range n.order {
			nd := n.nodes[id]
			if !nd.isUp() {
				continue
			}
			for _, topic := range nd.topics() {
				mesh := n.meshLocked(nd, topic)
				n.gossipLocked(nd, topic, mesh, p.Dlazy)
			}
		}
		for _, id := range n.order {
			ps := &n.nodes[id].ps
			if len(ps.cache) >= p.History {
				ps.cache = ps.cache[:p.History-1]
			}
			ps.cache = append([]map[msgKey]*envelope{{}}, ps.cache...)
		}
	}
	n.mu.Unlock()
	n.scheds[0].at(time.Now().Add(p.Heartbeat), n.heartbeat)
}

// gossipLocked sends IHAVE with the ids nd cached for topic to up to dlazy
// live subscribed peers outside its mesh.
func (n *Network) gossipLocked(nd *Node, topic string, mesh []*Node, dlazy int) {
	var ids []msgKey
	for _, w := range nd.ps.cache {
		for k, e := range w {
			if e.topic == topic {
				ids = append(ids, k)
			}
		}
	}
	if len(ids) == 0 {
		return
	}
	var cands []*Node
	for _, c := range n.livePeersLocked(nd.id) {
		if !slices.Contains(mesh, c) && c.subscribed(topic) {
			cands = append(cands, c)
		}
	}
	n.meshRng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	tc := n.topics.get(topic)
	for _, to := range cands[:min(dlazy, len(cands))] {
		nd.counters.gossip.Add(1)
		n.stats.gossip.Add(1)
		l := n.linkLocked(nd.id, to.id)
		r := n.rngLocked(nd.id, to.id)
		if l.Loss > 0 && r.Float64() < l.Loss {
			continue
		}
		at := n.arrivalLocked(nd.id, to.id, l, r)
		n.schedFor(to).at(at, func() { n.ihave(nd, to, ids, tc) })
	}
}

// ihave: to learns ids from nd and asks for those it lacks (IWANT, one
// more latency back); nd then sends them from its cache.
func (n *Network) ihave(from, to *Node, ids []msgKey, tc *topicCounters) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || !n.liveLocked(from.id, to.id) {
		return
	}
	var want []msgKey
	for _, k := range ids {
		if !to.ps.hasSeen(k) {
			want = append(want, k)
		}
	}
	if len(want) == 0 {
		return
	}
	l := n.linkLocked(to.id, from.id)
	at := n.arrivalLocked(to.id, from.id, l, n.rngLocked(to.id, from.id))
	n.schedFor(from).at(at, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.closed || !n.liveLocked(from.id, to.id) {
			return
		}
		for _, k := range want {
			if e := from.ps.cached(k); e != nil {
				n.sendLocked(from, to, e, tc)
			}
		}
	})
}
