package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/sdk"
)

// Log is what the Replicator needs of a replicated log; *log.Log has it.
type Log interface {
	Heads() []cid.Cid
	Len() int
	Has(ctx context.Context, c cid.Cid) (bool, error)
	Join(ctx context.Context, heads []cid.Cid, from string, opts ...log.JoinOption) (log.JoinResult, error)
	Subscribe(ctx context.Context) <-chan *log.Entry
}

var _ Log = (*log.Log)(nil)

// Replicator keeps logs in sync with the peers that replicate them, over an
// sdk.Network: it announces local appends on each log's topic, joins what
// peers announce, swaps heads with peers as they connect, and runs
// periodic anti-entropy. It is safe for concurrent use.
type Replicator struct {
	net     sdk.Network
	notify  sdk.PeerNotifier      // nil if the network lacks it
	direct  sdk.DirectMessenger   // nil if the network lacks it
	blocker sdk.PeerBlocker       // nil if the network lacks it
	gate    sdk.TopicGate         // nil if the network lacks it
	judge   sdk.TopicValidator    // nil if the network lacks it
	scorer  sdk.PeerScorer        // nil if the network lacks it
	joins   sdk.TopicPeerNotifier // nil if the network lacks it
	proofs  *proofs
	budgets *budgets
	blocks  *BlockStore
	opts    options
	logger  *slog.Logger

	mu         sync.Mutex
	running    bool
	closed     bool
	ctx        context.Context
	cancel     context.CancelFunc
	self       string
	logs       map[LogID]*replica
	topics     map[string]*topicSub
	blocked    map[string]BlockedPeer
	exchanging map[string]bool
	// again are the peers asked for a head exchange while one with them
	// was running: it runs once more when that one ends.
	again   map[string]bool
	bulkOff map[string]time.Time // peers not asked for bulk fetches until then
	// rendezvousSlots bounds the rendezvous rounds running at once
	// (all topics): a node replicating thousands of groups does not start
	// thousands of DHT lookups at once.
	rendezvousSlots chan struct{}
	wg              sync.WaitGroup
	later           reexchanges // head exchanges due again with peers that connected
	// topicJoins counts head exchanges started by a proven peer joining a
	// topic (topicjoin.go).
	topicJoins atomic.Int64
	// reported are the topics each peer joined, as the network reported
	// (topicjoin.go).
	reported reportedTopics
	// freshSkipped counts head exchanges after an announcement skipped
	// because the fresh peer was reached by pubsub (topicjoin.go).
	freshSkipped atomic.Int64
}

type topicSub struct {
	keys       *TopicKeys
	cancel     context.CancelFunc
	logs       map[LogID]*replica
	rendezvous RendezvousStatus // under Replicator.mu
}

// New returns a Replicator over net; it does nothing until Start. The
// optional capabilities (sdk.PeerNotifier, sdk.DirectMessenger,
// sdk.PeerBlocker, sdk.TopicGate, sdk.TopicValidator, sdk.PeerScorer,
// sdk.TopicPeerNotifier) are used when net has them.
func New(net sdk.Network, opts ...Option) (*Replicator, error) {
	if net == nil {
		return nil, errors.New("new replicator: nil network")
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("new replicator: %w", err)
		}
	}
	r := &Replicator{net: net, opts: o, logger: o.logger.With("component", "replication"),
		blocks: NewBlockStore(net, o.parallelism), logs: map[LogID]*replica{},
		topics: map[string]*topicSub{}, blocked: map[string]BlockedPeer{}, exchanging: map[string]bool{},
		again:   map[string]bool{},
		bulkOff: map[string]time.Time{}, rendezvousSlots: make(chan struct{}, rendezvousParallelRounds),
		proofs: newProofs(), budgets: newBudgets()}
	r.notify, _ = net.(sdk.PeerNotifier)
	r.gate, _ = net.(sdk.TopicGate)
	r.judge, _ = net.(sdk.TopicValidator)
	r.scorer, _ = net.(sdk.PeerScorer)
	r.direct, _ = net.(sdk.DirectMessenger)
	r.blocker, _ = net.(sdk.PeerBlocker)
	r.joins, _ = net.(sdk.TopicPeerNotifier)
	return r, nil
}

// BlockStore returns the adapter through which the Replicator fetches
// blocks; logs it replicates should store their blocks in it (or in
// another adapter of the same network) so that peers can fetch them.
func (r *Replicator) BlockStore() *BlockStore { return r.blocks }

// Start registers the head-exchange handler, follows peer connections and
// starts anti-entropy. The Replicator runs until Close.
func (r *Replicator) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("start replicator: %w", ErrNotStarted)
	}
	if r.running {
		return nil
	}
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.self = r.net.PeerID()
	if r.direct != nil {
		if err := r.direct.HandleRequests(ProofProtocol, r.handleProof); err != nil {
			r.cancel()
			return fmt.Errorf("start replicator: register %s: %w", ProofProtocol, err)
		}
		if err := r.direct.HandleRequests(HeadsProtocol, r.handleHeads); err != nil {
			r.cancel()
			return fmt.Errorf("start replicator: register %s: %w", HeadsProtocol, err)
		}
		if r.opts.bulkEntries > 0 {
			// Optional: peers that cannot use it fall back to the block getter.
			if err := r.direct.HandleRequests(EntriesProtocol, r.handleEntries); err != nil {
				r.logger.Warn("bulk entry fetch not served", "protocol", EntriesProtocol, "err", err)
			}
		}
	}
	if r.notify != nil {
		events, err := r.notify.PeerEvents(r.ctx)
		if err != nil {
			r.cancel()
			return fmt.Errorf("start replicator: peer events: %w", err)
		}
		r.wg.Go(func() { r.followPeers(events) })
	}
	r.running = true
	r.wg.Go(r.antiEntropyLoop)
	if r.scorer != nil {
		r.wg.Go(r.scoreLoop)
	}
	r.wg.Go(r.reexchangeLoop)
	return nil
}

// Close stops replication (the logs stay open; they are the caller's).
func (r *Replicator) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	wasRunning := r.running
	r.running = false
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
	if wasRunning && r.direct != nil {
		_ = r.direct.HandleRequests(HeadsProtocol, nil)
		_ = r.direct.HandleRequests(ProofProtocol, nil)
		if r.opts.bulkEntries > 0 {
			_ = r.direct.HandleRequests(EntriesProtocol, nil)
		}
	}
	r.wg.Wait()
	return nil
}

// Add replicates l on the topic derived from secret (see Topic), under
// channel (distinguishing several logs that share a secret, e.g. "meta"
// and "messages"). It returns the log's wire id. The secret (a group's
// replication key) also keys the membership proof and seals the topic's
// announcements (DeriveTopicKeys): only peers that prove they hold it
// exchange heads or entries of the log with this replica, and only they
// are admitted to the topic's mesh when the network closes topics.
func (r *Replicator) Add(secret []byte, channel string, l Log) (LogID, error) {
	keys, err := DeriveTopicKeys(secret)
	if err != nil {
		return LogID{}, fmt.Errorf("replicate log: %w", err)
	}
	if r.opts.suite != nil {
		keys = keys.WithSuite(r.opts.suite)
	}
	if l == nil {
		return LogID{}, errors.New("replicate log: nil log")
	}
	topic := keys.Topic
	id := LogIDFor(topic, channel)
	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return LogID{}, fmt.Errorf("replicate log %s: %w", id, ErrNotStarted)
	}
	if _, dup := r.logs[id]; dup {
		r.mu.Unlock()
		return LogID{}, fmt.Errorf("replicate log %s: %w", id, ErrDuplicateLog)
	}
	ts := r.topics[topic]
	if ts == nil {
		tctx, cancel := context.WithCancel(r.ctx)
		// Closed and validated before subscribing, so that no message
		// of the topic reaches this node unchecked or from a stranger.
		if err := r.guardTopic(tctx, keys); err != nil {
			cancel()
			r.mu.Unlock()
			return LogID{}, fmt.Errorf("replicate log %s: %w", id, err)
		}
		msgs, err := r.net.Subscribe(tctx, topic)
		if err != nil {
			cancel()
			r.mu.Unlock()
			return LogID{}, fmt.Errorf("replicate log %s: subscribe: %w", id, err)
		}
		ts = &topicSub{keys: keys, cancel: cancel, logs: map[LogID]*replica{}}
		r.topics[topic] = ts
		r.wg.Go(func() { r.readTopic(tctx, topic, keys, msgs) })
		if r.joins != nil {
			r.wg.Go(func() { r.followTopic(tctx, topic) })
		}
		if r.opts.rendezvous > 0 {
			r.wg.Go(func() { r.rendezvous(tctx, topic) })
		}
	}
	rep := newReplica(r, id, ts.keys, channel, l)
	ts.logs[id] = rep
	r.logs[id] = rep
	// Subscribe before returning, so that no append after Add goes unannounced.
	entries := l.Subscribe(rep.ctx)
	r.wg.Go(rep.work)
	r.wg.Go(func() { rep.watch(entries) })
	r.wg.Go(rep.publish)
	// A log added while peers are connected syncs with them now.
	r.wg.Go(func() { _ = r.Sync(r.ctx) })
	r.mu.Unlock()
	return id, nil
}

// Remove stops replicating the log with id.
func (r *Replicator) Remove(id LogID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.logs[id]
	if rep == nil {
		return fmt.Errorf("remove log %s: %w", id, ErrUnknownLog)
	}
	delete(r.logs, id)
	rep.cancel()
	ts := r.topics[rep.topic]
	delete(ts.logs, id)
	if len(ts.logs) == 0 {
		ts.cancel()
		delete(r.topics, rep.topic)
		r.proofs.forgetTopic(rep.topic)
		r.reported.forgetTopic(rep.topic)
		if r.judge != nil {
			_ = r.judge.ValidateTopic(rep.topic, nil)
		}
	}
	return nil
}

func (r *Replicator) replica(id LogID) *replica {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs[id]
}

func (r *Replicator) replicas() []*replica {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*replica, 0, len(r.logs))
	for _, rep := range r.logs {
		out = append(out, rep)
	}
	slices.SortFunc(out, func(a, b *replica) int { return compareLogIDs(a.id, b.id) })
	return out
}

func compareLogIDs(a, b LogID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// backoff waits d (doubling it up to maxBackoff for next time) unless ctx
// ends first; it reports whether ctx is still live.
func backoff(ctx context.Context, d *time.Duration) bool {
	t := time.NewTimer(*d)
	defer t.Stop()
	*d = min(2**d, maxBackoff)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// readTopic handles the announcements and digests of one topic. If the
// network ends the subscription (the plugin restarted), it subscribes
// again until the topic is no longer wanted.
func (r *Replicator) readTopic(ctx context.Context, topic string, keys *TopicKeys, msgs <-chan sdk.PubsubMessage) {
	wait := minBackoff
	for {
		r.readMessages(topic, keys, msgs)
		for {
			if !backoff(ctx, &wait) {
				return
			}
			var err error
			if msgs, err = r.net.Subscribe(ctx, topic); err == nil {
				r.logger.Info("resubscribed to topic", "topic", topic)
				wait = minBackoff
				break
			}
			r.logger.Debug("resubscribe to topic", "topic", topic, "err", err)
		}
	}
}

func (r *Replicator) readMessages(topic string, keys *TopicKeys, msgs <-chan sdk.PubsubMessage) {
	for m := range msgs {
		if m.From == r.self || r.isBlocked(m.From) {
			continue
		}
		a, err := keys.Open(m.Data)
		if err != nil {
			// From is the peer that handed us the message, not
			// necessarily its author: it is to blame only if it was bound
			// to check (every honest relay validates).
			if r.opts.pubsubValidated {
				r.cutOff(m.From, "pubsub: "+err.Error())
			} else {
				r.logger.Warn("dropped malformed pubsub message", "topic", topic, "peer", m.From, "err", err)
			}
			continue
		}
		rep := r.replica(a.Log)
		if rep == nil || rep.topic != topic {
			continue // a log of this topic that we do not replicate
		}
		// With the replicator's validator, what reaches here asks
		// nothing to be fetched (see validator); without it, heads to
		// fetch are bounded per peer.
		if r.judge == nil && !rep.selfContained(a) && !r.fetchAllowed(m.From, topic) {
			continue
		}
		how := viaAnnouncement
		if a.Digest {
			how = viaDigest
		}
		rep.received(m.From, a.Heads, a.Inline, how)
	}
}

// followPeers swaps heads with every peer that connects. If the network
// ends the event stream (the plugin restarted), it asks for a new one.
func (r *Replicator) followPeers(events <-chan sdk.PeerEvent) {
	wait := minBackoff
	for {
		for ev := range events {
			if ev.Peer == r.self {
				continue
			}
			if !ev.Connected {
				// A proof holds for one connection: the next proves again.
				r.proofs.forget(ev.Peer)
				r.reported.forget(ev.Peer)
				r.budgets.forget(ev.Peer)
				continue
			}
			if r.isBlocked(ev.Peer) {
				continue
			}
			r.exchangeAsync(ev.Peer)
			r.exchangeLater(ev.Peer)
		}
		for {
			if !backoff(r.ctx, &wait) {
				return
			}
			var err error
			if events, err = r.notify.PeerEvents(r.ctx); err == nil {
				wait = minBackoff
				break
			}
			r.logger.Debug("peer events", "err", err)
		}
	}
}

// exchangeFresh exchanges heads with every fresh peer (one still due a
// re-exchange, see reexchanges): what was just announced on topic reaches
// them even if pubsub does not yet deliver to them, at once instead of at
// the next re-exchange. A fresh peer that joined topic and proved it
// (reachedByPubsub) got the announcement and is skipped; one the network
// never reports joining (no sdk.TopicPeerNotifier) is always exchanged
// with.
func (r *Replicator) exchangeFresh(topic string) {
	q := &r.later
	q.init()
	q.mu.Lock()
	peers := make([]string, 0, len(q.due))
	for p := range q.due {
		peers = append(peers, p)
	}
	q.mu.Unlock()
	for _, p := range peers {
		if r.reachedByPubsub(p, topic) {
			r.freshSkipped.Add(1)
			continue
		}
		r.exchangeAsync(p)
	}
}

// connected reports whether the network lists peer as connected.
func (r *Replicator) connected(peer string) bool { return r.livePeers(r.ctx)[peer] }

// livePeers returns the IDs of the peers the network lists as connected
// (none if it cannot list them).
func (r *Replicator) livePeers(ctx context.Context) map[string]bool {
	peers, err := r.net.Peers(ctx)
	if err != nil {
		return map[string]bool{}
	}
	return peerSet(peers)
}

// peerSet returns the IDs of peers as a set.
func peerSet(peers []sdk.PeerInfo) map[string]bool {
	set := make(map[string]bool, len(peers))
	for _, p := range peers {
		set[p.ID] = true
	}
	return set
}

// exchangeAsync starts a head exchange with peer unless one is running.
func (r *Replicator) exchangeAsync(peer string) {
	if r.direct == nil {
		return
	}
	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return
	}
	if r.exchanging[peer] {
		// The running one may have read the heads before what prompted
		// this: one more follows it.
		r.again[peer] = true
		r.mu.Unlock()
		return
	}
	r.exchanging[peer] = true
	defer r.mu.Unlock()
	// Under r.mu, so that Close (which clears running first) never waits
	// while a goroutine is being added.
	r.wg.Go(func() {
		for {
			if err := r.ExchangeHeads(r.ctx, peer); err != nil {
				r.logger.Debug("head exchange failed", "peer", peer, "err", err)
			}
			r.mu.Lock()
			if !r.again[peer] || !r.running {
				delete(r.exchanging, peer)
				delete(r.again, peer)
				r.mu.Unlock()
				return
			}
			delete(r.again, peer)
			r.mu.Unlock()
		}
	})
}

// localHeads returns the heads exchange message naming every replicated
// log of a topic peer proved.
func (r *Replicator) localHeads(peer string) *HeadsExchange {
	x := &HeadsExchange{}
	for _, rep := range r.replicas() {
		if !r.proofs.has(peer, rep.topic) {
			continue
		}
		x.Logs = append(x.Logs, LogHeads{Log: rep.id, Heads: sortHeads(rep.log.Heads())})
	}
	if len(x.Logs) > MaxExchangeLogs {
		x.Logs = x.Logs[:MaxExchangeLogs]
	}
	return x
}

// ExchangeHeads swaps heads with peer over HeadsProtocol for every log
// both replicate, and joins what the peer has (in the background).
func (r *Replicator) ExchangeHeads(ctx context.Context, peer string) error {
	if r.direct == nil {
		return fmt.Errorf("exchange heads with %q: %w", peer, ErrNoDirect)
	}
	if r.isBlocked(peer) {
		return fmt.Errorf("exchange heads with %q: %w", peer, ErrBlockedPeer)
	}
	pctx, pcancel := context.WithTimeout(ctx, r.opts.requestTimeout)
	_, err := r.prove(pctx, peer)
	pcancel()
	if err != nil {
		r.logger.Debug("membership proof", "peer", peer, "err", err)
	}
	// Only logs of topics both proved: a peer that proved none is never
	// sent a heads request.
	req := r.localHeads(peer)
	if len(req.Logs) == 0 {
		return nil
	}
	data, err := req.MarshalBinary()
	if err != nil {
		return fmt.Errorf("exchange heads with %q: %w", peer, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.requestTimeout)
	defer cancel()
	raw, err := r.direct.Request(ctx, peer, HeadsProtocol, data)
	if err != nil {
		return fmt.Errorf("exchange heads with %q: %w", peer, err)
	}
	resp, err := DecodeHeadsExchange(raw)
	if err == nil && !resp.Response {
		err = fmt.Errorf("%w: a request where a response was due", ErrMalformedMessage)
	}
	if err == nil {
		asked := map[LogID]bool{}
		for _, lh := range req.Logs {
			asked[lh.Log] = true
		}
		for _, lh := range resp.Logs {
			if !asked[lh.Log] {
				err = fmt.Errorf("%w: response names log %s that was not asked for", ErrMalformedMessage, lh.Log)
				break
			}
		}
	}
	if err != nil {
		r.cutOff(peer, "heads response: "+err.Error())
		return fmt.Errorf("exchange heads with %q: %w", peer, err)
	}
	for _, lh := range resp.Logs {
		if rep := r.replica(lh.Log); rep != nil {
			rep.received(peer, lh.Heads, nil, viaDirect)
		}
	}
	return nil
}

// handleHeads answers a head-exchange request.
func (r *Replicator) handleHeads(_ context.Context, from string, req []byte) ([]byte, error) {
	if r.isBlocked(from) {
		return nil, fmt.Errorf("heads request from %q: %w", from, ErrBlockedPeer)
	}
	x, err := DecodeHeadsExchange(req)
	if err == nil && x.Response {
		err = fmt.Errorf("%w: a response where a request was due", ErrMalformedMessage)
	}
	if err != nil {
		r.cutOff(from, "heads request: "+err.Error())
		return nil, fmt.Errorf("heads request from %q: %w", from, err)
	}
	// A log this replica lacks and a log of a topic the peer has not
	// proved on this connection get the same answer: nothing.
	resp := &HeadsExchange{Response: true}
	for _, lh := range x.Logs {
		rep := r.replica(lh.Log)
		if rep == nil || !r.proofs.has(from, rep.topic) {
			continue
		}
		resp.Logs = append(resp.Logs, LogHeads{Log: lh.Log, Heads: sortHeads(rep.log.Heads())})
		rep.received(from, lh.Heads, nil, viaDirect)
	}
	return resp.MarshalBinary()
}

// Sync exchanges heads now with every connected peer (on demand, e.g. from
// the client API). It returns the exchanges' errors joined.
func (r *Replicator) Sync(ctx context.Context) error {
	if r.direct == nil {
		return fmt.Errorf("sync: %w", ErrNoDirect)
	}
	peers, err := r.net.Peers(ctx)
	if err != nil {
		return fmt.Errorf("sync: list peers: %w", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(peers))
	for i, p := range peers {
		if p.ID == r.self || r.isBlocked(p.ID) {
			continue
		}
		wg.Go(func() { errs[i] = r.ExchangeHeads(ctx, p.ID) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Replicator) antiEntropyLoop() {
	t := time.NewTicker(r.opts.interval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			r.antiEntropy(r.ctx)
		}
	}
}

// antiEntropy publishes every log's digest, retries joins of remote heads
// still missing from live peers, and exchanges heads with a few peers.
func (r *Replicator) antiEntropy(ctx context.Context) {
	peers, err := r.net.Peers(ctx)
	if err != nil {
		r.logger.Debug("anti-entropy: list peers", "err", err)
	}
	live := peerSet(peers)
	for _, rep := range r.replicas() {
		rep.digest(ctx)
		rep.retryMissing(live)
	}
	if r.direct == nil || r.opts.exchangePeers == 0 {
		return
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	n := 0
	for _, p := range peers {
		if n == r.opts.exchangePeers {
			break
		}
		if p.ID == r.self || r.isBlocked(p.ID) {
			continue
		}
		r.exchangeAsync(p.ID)
		n++
	}
}

func (r *Replicator) isBlocked(peer string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.blocked[peer]
	if !ok {
		return false
	}
	if time.Now().After(b.Until) {
		delete(r.blocked, peer)
		return false
	}
	return true
}

// cutOff stops listening to peer for the block duration and asks the
// network to cut it off, if it can.
func (r *Replicator) cutOff(peer, reason string) {
	if peer == "" || peer == r.self {
		return
	}
	until := time.Now().Add(r.opts.blockFor)
	r.mu.Lock()
	if b, ok := r.blocked[peer]; ok && time.Now().Before(b.Until) {
		r.mu.Unlock()
		return
	}
	r.blocked[peer] = BlockedPeer{Peer: peer, Reason: reason, Until: until}
	ctx := r.ctx
	r.mu.Unlock()
	r.logger.Warn("peer cut off", "peer", peer, "reason", reason, "for", r.opts.blockFor)
	for _, rep := range r.replicas() {
		rep.forget(peer)
	}
	if r.blocker != nil && ctx != nil {
		if err := r.blocker.BlockPeer(ctx, peer, reason, r.opts.blockFor); err != nil {
			r.logger.Warn("network could not block peer", "peer", peer, "err", err)
		}
	}
}
