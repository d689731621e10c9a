package messenger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/sdk"
)

// ErrNotReplicated: a head request or status names a group this node does
// not replicate.
var ErrNotReplicated = errors.New("group not replicated here")

// NetworkReplicatorOption configures NewNetworkReplicator.
type NetworkReplicatorOption func(*NetworkReplicator)

// WithAntiEntropy sets how often every group's heads are announced again,
// so that a dropped announcement never leaves a peer behind (default 10s).
func WithAntiEntropy(d time.Duration) NetworkReplicatorOption {
	return func(r *NetworkReplicator) {
		if d > 0 {
			r.interval = d
		}
	}
}

// WithMergeTimeout bounds one merge of a peer's heads, fetching included
// (default 10s): heads naming blocks nobody serves cannot stall the group.
func WithMergeTimeout(d time.Duration) NetworkReplicatorOption {
	return func(r *NetworkReplicator) {
		if d > 0 {
			r.mergeTimeout = d
		}
	}
}

// WithReplicatorLogger sets the logger (default: discard).
func WithReplicatorLogger(l *slog.Logger) NetworkReplicatorOption {
	return func(r *NetworkReplicator) {
		if l != nil {
			r.logger = l
		}
	}
}

// NetworkReplicator is the messenger's built-in Replicator over an
// sdk.Network: per group a pubsub topic carrying heads announcements, a
// head exchange with each peer as it connects (when the network is an
// sdk.PeerNotifier and sdk.DirectMessenger), periodic re-announcement, and
// entries fetched through the network's blocks by the group's logs.
type NetworkReplicator struct {
	n        sdk.Network
	logger   *slog.Logger
	interval time.Duration
	// mergeTimeout bounds one Receive; blockFor is how long a peer that
	// sent forged or malformed data is cut off.
	mergeTimeout time.Duration
	blockFor     time.Duration
	ctx          context.Context
	cancel       context.CancelFunc
	wg           sync.WaitGroup

	mu      sync.Mutex
	groups  map[crypto.PublicKey]*replicated
	byTopic map[string]*replicated
	closed  bool
}

type replicated struct {
	r      Replica
	topic  string
	cancel context.CancelFunc
	wake   chan struct{}

	mu       sync.Mutex
	pending  map[string]group.Heads // latest unmerged heads per peer
	remote   map[string]group.Heads // latest heads per peer
	lastSync time.Time
}

var _ Replicator = (*NetworkReplicator)(nil)

// NewNetworkReplicator starts a replicator over n. Close stops it.
func NewNetworkReplicator(n sdk.Network, opts ...NetworkReplicatorOption) (*NetworkReplicator, error) {
	if n == nil {
		return nil, errors.New("new replicator: nil network")
	}
	r := &NetworkReplicator{
		n:            n,
		logger:       slog.New(slog.DiscardHandler),
		interval:     10 * time.Second,
		mergeTimeout: 10 * time.Second,
		blockFor:     10 * time.Minute,
		groups:       map[crypto.PublicKey]*replicated{},
		byTopic:      map[string]*replicated{},
	}
	for _, o := range opts {
		o(r)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if dm, ok := n.(sdk.DirectMessenger); ok {
		if err := dm.HandleRequests(HeadsProtocol, r.answerHeads); err != nil {
			r.cancel()
			return nil, fmt.Errorf("new replicator: %w", err)
		}
	}
	if pn, ok := n.(sdk.PeerNotifier); ok {
		events, err := pn.PeerEvents(r.ctx)
		if err != nil {
			r.cancel()
			return nil, fmt.Errorf("new replicator: peer events: %w", err)
		}
		r.wg.Go(func() { r.watchPeers(events) })
	}
	r.wg.Go(r.antiEntropy)
	return r, nil
}

// Close stops every replication and waits for its goroutines.
func (r *NetworkReplicator) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	if dm, ok := r.n.(sdk.DirectMessenger); ok {
		_ = dm.HandleRequests(HeadsProtocol, nil)
	}
	r.cancel()
	r.wg.Wait()
	return nil
}

// Add starts replicating rep.
func (r *NetworkReplicator) Add(ctx context.Context, rep Replica) error {
	id := rep.ID()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("replicator closed")
	}
	if _, ok := r.groups[id]; ok {
		return nil
	}
	topic := TopicFor(id)
	gctx, cancel := context.WithCancel(r.ctx)
	msgs, err := r.n.Subscribe(gctx, topic)
	if err != nil {
		cancel()
		return fmt.Errorf("replicate group %s: subscribe: %w", id.Fingerprint(), err)
	}
	g := &replicated{r: rep, topic: topic, cancel: cancel, wake: make(chan struct{}, 1),
		pending: map[string]group.Heads{}, remote: map[string]group.Heads{}}
	r.groups[id] = g
	r.byTopic[topic] = g
	r.wg.Go(func() { r.readTopic(gctx, g, msgs) })
	r.wg.Go(func() { r.merge(gctx, g) })
	// Ask the peers already connected.
	r.wg.Go(func() {
		peers, err := r.n.Peers(gctx)
		if err != nil {
			return
		}
		for _, p := range peers {
			r.requestHeads(gctx, p.ID, g)
		}
	})
	return nil
}

// Remove stops replicating group id.
func (r *NetworkReplicator) Remove(id crypto.PublicKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g, ok := r.groups[id]; ok {
		g.cancel()
		delete(r.groups, id)
		delete(r.byTopic, g.topic)
	}
}

func (r *NetworkReplicator) lookup(id crypto.PublicKey) *replicated {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.groups[id]
}

// Announce publishes the group's heads on its topic.
func (r *NetworkReplicator) Announce(ctx context.Context, id crypto.PublicKey) error {
	g := r.lookup(id)
	if g == nil {
		return fmt.Errorf("announce group %s: %w", id.Fingerprint(), ErrNotReplicated)
	}
	return r.announce(ctx, g)
}

func (r *NetworkReplicator) announce(ctx context.Context, g *replicated) error {
	return r.publishHeads(ctx, g, false)
}

// publishHeads publishes the group's heads on its topic as one
// core/replication Announcement per non-empty log (the format the network
// plugin validates), as a digest when digest is set.
func (r *NetworkReplicator) publishHeads(ctx context.Context, g *replicated, digest bool) error {
	id := g.r.ID()
	h := g.r.Heads()
	for _, l := range []struct {
		channel string
		heads   []cid.Cid
	}{{metaChannel, h.Meta}, {messagesChannel, h.Messages}} {
		if len(l.heads) == 0 {
			continue
		}
		b, err := encodeAnnouncement(g.topic, l.channel, l.heads, digest)
		if err != nil {
			return fmt.Errorf("announce group %s: %w", id.Fingerprint(), err)
		}
		if err := r.n.Publish(ctx, g.topic, b); err != nil {
			return fmt.Errorf("announce group %s: %w", id.Fingerprint(), err)
		}
	}
	return nil
}

// FetchHeads asks connected peers for the heads of group id, and listens
// on its topic, until one answers or ctx ends.
func (r *NetworkReplicator) FetchHeads(ctx context.Context, id crypto.PublicKey) (string, group.Heads, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	topic := TopicFor(id)
	msgs, err := r.n.Subscribe(ctx, topic)
	if err != nil {
		return "", group.Heads{}, fmt.Errorf("fetch heads of group %s: subscribe: %w", id.Fingerprint(), err)
	}
	dm, _ := r.n.(sdk.DirectMessenger)
	retry := 20 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", group.Heads{}, fmt.Errorf("fetch heads of group %s: no member reachable: %w", id.Fingerprint(), ctx.Err())
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			if m.From == r.n.PeerID() {
				continue
			}
			if h, err := decodeAnnouncement(topic, m.Data); err == nil && len(h.Meta) > 0 {
				return m.From, h, nil
			}
		case <-timer.C:
			if err := r.n.Publish(ctx, topic, encodeWant(id)); err != nil {
				r.logger.Debug("publish want", "err", err)
			}
			if dm != nil {
				peers, _ := r.n.Peers(ctx)
				for _, p := range peers {
					rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
					resp, err := dm.Request(rctx, p.ID, HeadsProtocol, []byte(topic))
					rcancel()
					if err != nil {
						continue
					}
					gid, h, err := DecodeHeads(resp)
					if err == nil && gid == id && len(h.Meta) > 0 {
						return p.ID, h, nil
					}
				}
			}
			timer.Reset(retry)
			retry = min(2*retry, time.Second)
		}
	}
}

// Status reports what the replicator knows of the group's sync state.
func (r *NetworkReplicator) Status(ctx context.Context, id crypto.PublicKey) (SyncStatus, error) {
	g := r.lookup(id)
	if g == nil {
		return SyncStatus{}, fmt.Errorf("sync status of group %s: %w", id.Fingerprint(), ErrNotReplicated)
	}
	local := g.r.Heads()
	g.mu.Lock()
	st := SyncStatus{Group: id, LastSync: g.lastSync}
	var rMeta, rMsgs []cid.Cid
	for p, h := range g.remote {
		st.Peers = append(st.Peers, p)
		rMeta = append(rMeta, h.Meta...)
		rMsgs = append(rMsgs, h.Messages...)
	}
	g.mu.Unlock()
	slices.Sort(st.Peers)
	st.Logs = []LogSync{
		r.logSync(ctx, "meta", local.Meta, rMeta),
		r.logSync(ctx, "messages", local.Messages, rMsgs),
	}
	return st, nil
}

func (r *NetworkReplicator) logSync(ctx context.Context, name string, local, remote []cid.Cid) LogSync {
	remote = uniqueCIDs(remote)
	ls := LogSync{Log: name, LocalHeads: local, RemoteHeads: remote}
	for _, c := range remote {
		if slices.Contains(local, c) {
			continue
		}
		if ok, err := r.n.HasBlock(ctx, c.Bytes()); err != nil || !ok {
			ls.Missing++
		}
	}
	return ls
}

func uniqueCIDs(cs []cid.Cid) []cid.Cid {
	seen := map[cid.Cid]bool{}
	out := cs[:0:0]
	for _, c := range cs {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b cid.Cid) int { return compareBytes(a.Bytes(), b.Bytes()) })
	return out
}

func compareBytes(a, b []byte) int { return slices.Compare(a, b) }

// queue records heads from peer for the merge goroutine; only the latest
// heads per peer are kept, so a slow merge never grows a backlog.
func (g *replicated) queue(from string, h group.Heads) {
	g.mu.Lock()
	g.pending[from] = mergeHeads(g.pending[from], h)
	g.remote[from] = mergeHeads(g.remote[from], h)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

func (r *NetworkReplicator) readTopic(ctx context.Context, g *replicated, msgs <-chan sdk.PubsubMessage) {
	self := r.n.PeerID()
	id := g.r.ID()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if m.From == self {
				continue
			}
			if isWant(m.Data, id) {
				if err := r.announce(ctx, g); err != nil {
					r.logger.Debug("announce on want", "err", err)
				}
				continue
			}
			h, err := decodeAnnouncement(g.topic, m.Data)
			if err != nil {
				r.cutOff(m.From, fmt.Sprintf("malformed announcement: %v", err))
				continue
			}
			g.queue(m.From, h)
		}
	}
}

// merge joins queued remote heads into the group, one peer at a time, and
// announces the group's heads when the merge (or the chain keys it shared)
// left them different from what the peer announced.
func (r *NetworkReplicator) merge(ctx context.Context, g *replicated) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.wake:
		}
		g.mu.Lock()
		batch := g.pending
		g.pending = map[string]group.Heads{}
		g.mu.Unlock()
		for from, h := range batch {
			before := g.r.Heads()
			mctx, cancel := context.WithTimeout(ctx, r.mergeTimeout)
			err := g.r.Receive(mctx, from, h)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				r.logger.Warn("merge heads", "group", g.r.ID().Fingerprint(), "peer", from, "err", err)
				var re *group.RejectedError
				if !errors.As(err, &re) {
					continue
				}
				for _, rej := range re.Rejections {
					if misbehaviour(rej.Err) {
						r.cutOff(from, fmt.Sprintf("sent a forged or malformed entry %s: %v", rej.CID, rej.Err))
						break
					}
				}
			} else {
				g.mu.Lock()
				g.lastSync = time.Now()
				g.mu.Unlock()
			}
			after := g.r.Heads()
			if !sameHeads(before, after) && !sameHeads(after, h) {
				if err := r.announce(ctx, g); err != nil {
					r.logger.Debug("announce", "err", err)
				}
			}
		}
	}
}

// misbehaviour reports whether a rejection proves the peer that named the
// entry is faulty or malicious: an honest replica announces only entries
// it accepted, and an entry's bytes are bound to its CID. A missing block or
// an access refusal (membership views differ for a moment) proves nothing.
func misbehaviour(err error) bool {
	for _, e := range []error{log.ErrMalformed, log.ErrHashMismatch, log.ErrBadSignature,
		log.ErrWrongLog, log.ErrTooLarge, log.ErrClock, log.ErrCycle} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// cutOff blocks a misbehaving peer when the network can (sdk.PeerBlocker).
func (r *NetworkReplicator) cutOff(peer, reason string) {
	r.logger.Warn("peer misbehaved", "peer", peer, "reason", reason)
	if pb, ok := r.n.(sdk.PeerBlocker); ok {
		if err := pb.BlockPeer(r.ctx, peer, reason, r.blockFor); err != nil {
			r.logger.Debug("block peer", "peer", peer, "err", err)
		}
	}
}

func (r *NetworkReplicator) requestHeads(ctx context.Context, peer string, g *replicated) {
	dm, ok := r.n.(sdk.DirectMessenger)
	if !ok {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := dm.Request(rctx, peer, HeadsProtocol, []byte(g.topic))
	if err != nil {
		return // the peer does not replicate the group, or is gone
	}
	gid, h, err := DecodeHeads(resp)
	if err != nil || gid != g.r.ID() {
		r.cutOff(peer, fmt.Sprintf("malformed head-exchange answer: %v", err))
		return
	}
	g.queue(peer, h)
}

func (r *NetworkReplicator) answerHeads(_ context.Context, from string, req []byte) ([]byte, error) {
	r.mu.Lock()
	g := r.byTopic[string(req)]
	r.mu.Unlock()
	if g == nil {
		return nil, ErrNotReplicated
	}
	return encodeHeads(g.r.ID(), g.r.Heads()), nil
}

func (r *NetworkReplicator) watchPeers(events <-chan sdk.PeerEvent) {
	for {
		select {
		case <-r.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if !ev.Connected {
				continue
			}
			r.mu.Lock()
			groups := make([]*replicated, 0, len(r.groups))
			for _, g := range r.groups {
				groups = append(groups, g)
			}
			r.mu.Unlock()
			for _, g := range groups {
				r.wg.Go(func() { r.requestHeads(r.ctx, ev.Peer, g) })
			}
		}
	}
}

func (r *NetworkReplicator) antiEntropy() {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		groups := make([]*replicated, 0, len(r.groups))
		for _, g := range r.groups {
			groups = append(groups, g)
		}
		r.mu.Unlock()
		// Pubsub may drop a digest identical to an earlier one (content-
		// hash message ids), so also swap heads directly with a few peers.
		var peers []sdk.PeerInfo
		if _, ok := r.n.(sdk.DirectMessenger); ok {
			peers, _ = r.n.Peers(r.ctx)
			if len(peers) > antiEntropyPeers {
				rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
				peers = peers[:antiEntropyPeers]
			}
		}
		for _, g := range groups {
			if err := r.publishHeads(r.ctx, g, true); err != nil {
				r.logger.Debug("anti-entropy digest", "err", err)
			}
			for _, p := range peers {
				r.requestHeads(r.ctx, p.ID, g)
			}
		}
	}
}

// antiEntropyPeers bounds the peers each anti-entropy round asks directly.
const antiEntropyPeers = 4
