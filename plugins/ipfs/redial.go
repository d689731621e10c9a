package ipfs

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	// redialMinBackoff is the first delay before a wanted peer that was
	// lost (or could not be dialled) is dialled again; it doubles on every
	// failed attempt up to Config.RedialMaxBackoff.
	redialMinBackoff = time.Second
	// redialStableConn is how long a connection to a wanted peer must
	// have lasted for its loss to reset the backoff: a peer that accepts
	// and drops at once (flapping, or refusing us after the handshake) is
	// dialled ever more slowly, not once a second.
	redialStableConn = 10 * time.Second
	// redialDialTimeout bounds one redial attempt.
	redialDialTimeout = 30 * time.Second
	// redialMaxAddrs bounds the addresses remembered for one peer.
	redialMaxAddrs = 32
	// redialForgetAfter is how long a remembered (not bootstrap) peer may
	// go without a working connection before it is forgotten: a peer
	// that moved away for good is not dialled forever.
	redialForgetAfter = 30 * 24 * time.Hour
	// wantedProtectTag protects wanted peers' connections from the
	// connection manager's trimming, which redialling would only undo.
	wantedProtectTag = "skein-wanted"
)

// wantedPeer is one peer the node keeps connected.
type wantedPeer struct {
	id    peer.ID
	addrs []ma.Multiaddr
	// bootstrap peers come from the config: never evicted.
	bootstrap bool
	// elem is the peer's place in the recency list of remembered peers
	// (those saved to the file); nil: not remembered (a bootstrap peer
	// never wanted otherwise).
	elem *list.Element
	// lastConnected is when a connection to the peer was last up (or,
	// never connected, when it was first wanted): the peer is forgotten
	// once that is longer ago than forgetAfter.
	lastConnected time.Time
	// backoff is the delay before the next dial that gets scheduled.
	backoff time.Duration
	// next is when the peer is dialled next; zero: no dial scheduled.
	next time.Time
	// dialing is set while a dial is under way.
	dialing bool
	// connectedAt is when the current connection came up; zero: none.
	connectedAt time.Time
}

// redialer keeps wanted peers connected: the configured bootstrap peers
// and every peer the node was asked to Connect to (at most maxPeers of
// those, the least recently wanted evicted). A wanted peer that is not
// connected is dialled again after a backoff that starts at
// redialMinBackoff and doubles up to maxBackoff, plus up to a fifth more
// of jitter (never less); it goes back to the minimum when a connection
// that lasted redialStableConn is lost. Disconnections are learnt from
// the host's event bus (EvtPeerConnectednessChanged), not by polling. A
// peer the gater blocks is not dialled until its block has expired. The
// connection manager does not trim wanted peers' connections.
type redialer struct {
	host       host.Host
	gater      *gater
	logger     *slog.Logger
	maxBackoff time.Duration
	maxPeers   int
	// forgetAfter: redialForgetAfter, shorter in tests.
	forgetAfter time.Duration

	// file remembers the non-bootstrap wanted peers across restarts
	// (wantedPeersFile); "" without a data directory.
	file string

	mu     sync.Mutex
	peers  map[peer.ID]*wantedPeer
	recent *list.List // of peer.ID, most recently wanted first; bootstrap peers not listed
	dirty  bool       // the remembered set changed since file was written

	// wake tells the loop that the schedule changed.
	wake chan struct{}
	// done is closed when the loop and every dial it started have ended.
	done chan struct{}
	// dials counts dial goroutines; only the loop adds to it.
	dials sync.WaitGroup
	// attempts counts the redials started.
	attempts atomic.Int64
}

func newRedialer(h host.Host, g *gater, logger *slog.Logger, maxBackoff time.Duration, maxPeers int) *redialer {
	return &redialer{
		host:        h,
		gater:       g,
		logger:      logger,
		maxBackoff:  max(maxBackoff, redialMinBackoff),
		maxPeers:    maxPeers,
		forgetAfter: redialForgetAfter,
		peers:       map[peer.ID]*wantedPeer{},
		recent:      list.New(),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
}

// start subscribes to connectedness events and runs the loop until ctx
// ends; done is closed after that.
func (r *redialer) start(ctx context.Context) error {
	sub, err := r.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return fmt.Errorf("network.ipfs: redial: subscribe to connectedness events: %w", err)
	}
	go r.loop(ctx, sub)
	return nil
}

// wait blocks until the loop started by start has ended (ctx cancelled).
func (r *redialer) wait() { <-r.done }

// want adds p to the wanted set (or refreshes it: newest addresses, most
// recently wanted). A peer not connected now is dialled at once when
// immediate is set, else after its backoff. A bootstrap peer (from the
// config) is kept but not remembered in the file; any other is, and so is
// a bootstrap peer wanted again as another (one that shares a group: the
// config that named it may be gone after a restart). A peer wanted with no
// addresses keeps those it had, or else those the peerstore holds (what
// it said it listens on).
func (r *redialer) want(info peer.AddrInfo, bootstrap, immediate bool) {
	r.wantAt(info, bootstrap, immediate, time.Time{})
}

// wantAt is want for a peer last connected at last (zero: now, or when it
// was first wanted): restore gives the time saved in the file.
func (r *redialer) wantAt(info peer.AddrInfo, bootstrap, immediate bool, last time.Time) {
	if info.ID == "" || info.ID == r.host.ID() {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[info.ID]
	if !ok {
		p = &wantedPeer{id: info.ID, backoff: redialMinBackoff, lastConnected: now}
		if !last.IsZero() {
			p.lastConnected = last
		}
		r.peers[info.ID] = p
		r.host.ConnManager().Protect(info.ID, wantedProtectTag)
	}
	addrs := info.Addrs
	if len(addrs) == 0 && len(p.addrs) == 0 {
		addrs = r.host.Peerstore().Addrs(info.ID)
	}
	if len(addrs) > 0 {
		addrs = slices.Clone(addrs[:min(len(addrs), redialMaxAddrs)])
		if !slices.EqualFunc(addrs, p.addrs, ma.Multiaddr.Equal) {
			p.addrs = addrs
			r.dirty = r.dirty || p.elem != nil || !bootstrap
		}
	}
	switch {
	case bootstrap:
		p.bootstrap = true
	case p.elem != nil:
		if r.recent.Front() != p.elem {
			r.recent.MoveToFront(p.elem)
			r.dirty = true
		}
	default:
		p.elem = r.recent.PushFront(info.ID)
		r.dirty = true
		for r.recent.Len() > r.maxPeers {
			r.forgetLocked(r.recent.Back().Value.(peer.ID), "too many")
		}
	}
	if r.host.Network().Connectedness(info.ID) == network.Connected {
		if p.connectedAt.IsZero() {
			p.connectedAt = now
		}
		p.lastConnected = now
		p.next = time.Time{}
	} else if !p.dialing {
		if immediate {
			p.next = now
		} else if p.next.IsZero() {
			r.scheduleLocked(p, now)
		}
	}
	r.signal()
}

// forgetLocked drops id from the remembered peers, and from the wanted
// set unless it is a bootstrap peer.
func (r *redialer) forgetLocked(id peer.ID, why string) {
	p := r.peers[id]
	if p == nil {
		return
	}
	if p.elem != nil {
		r.recent.Remove(p.elem)
		p.elem = nil
		r.dirty = true
	}
	if p.bootstrap {
		return
	}
	delete(r.peers, id)
	r.host.ConnManager().Unprotect(id, wantedProtectTag)
	r.logger.Info("remembered peer forgotten", "peer", id.String(), "why", why)
}

// save writes the remembered peers to the file if they changed (or
// always, with final: the peers connected now were last connected now). A
// failure is logged and retried at the next change.
func (r *redialer) save(final bool) {
	if r.file == "" {
		return
	}
	now := time.Now()
	r.mu.Lock()
	if !r.dirty && !final {
		r.mu.Unlock()
		return
	}
	r.dirty = false
	var peers []rememberedPeer
	for e := r.recent.Front(); e != nil; e = e.Next() {
		if p := r.peers[e.Value.(peer.ID)]; p != nil {
			last := p.lastConnected
			if !p.connectedAt.IsZero() {
				last = now
			}
			peers = append(peers, rememberedPeer{AddrInfo: peer.AddrInfo{ID: p.id, Addrs: slices.Clone(p.addrs)}, lastConnected: last})
		}
	}
	r.mu.Unlock()
	if err := saveWantedPeers(r.file, peers); err != nil {
		r.logger.Warn("could not remember the wanted peers; a restart will not redial them", "file", r.file, "err", err)
	}
}

// restore wants again the peers remembered in the file, dialling them at
// once; entries that do not parse are logged and skipped.
func (r *redialer) restore() {
	if r.file == "" {
		return
	}
	infos, errs := loadWantedPeers(r.file)
	for _, err := range errs {
		r.logger.Warn("wanted peers file: skipped", "err", err)
	}
	now := time.Now()
	for _, info := range slices.Backward(infos) { // the most recent ends first
		if !info.lastConnected.IsZero() && now.Sub(info.lastConnected) > r.forgetAfter {
			r.logger.Info("remembered peer forgotten", "peer", info.ID.String(), "why", "no connection since "+info.lastConnected.UTC().Format(time.RFC3339))
			r.mu.Lock()
			r.dirty = true
			r.mu.Unlock()
			continue
		}
		r.wantAt(info.AddrInfo, false, true, info.lastConnected)
	}
	if len(infos) > 0 {
		r.logger.Info("redialling the peers remembered from the last run", "peers", len(infos))
	}
}

// wanted reports how many peers are wanted.
func (r *redialer) wanted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.peers)
}

// scheduleLocked sets p's next dial one backoff (plus jitter) from now and
// doubles the backoff for the one after.
func (r *redialer) scheduleLocked(p *wantedPeer, now time.Time) {
	d := p.backoff
	p.next = now.Add(d + rand.N(d/5+1))
	p.backoff = min(2*d, r.maxBackoff)
}

func (r *redialer) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *redialer) loop(ctx context.Context, sub event.Subscription) {
	defer close(r.done)
	defer r.dials.Wait()
	defer r.save(true)
	defer sub.Close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.save(false)
		timer.Reset(r.dispatch(ctx))
		select {
		case <-ctx.Done():
			return
		case raw, ok := <-sub.Out():
			if !ok {
				return
			}
			if e, ok := raw.(event.EvtPeerConnectednessChanged); ok {
				r.connectedness(e)
			}
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// connectedness records a wanted peer's connection coming up or going.
func (r *redialer) connectedness(e event.EvtPeerConnectednessChanged) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[e.Peer]
	if !ok {
		return
	}
	if e.Connectedness == network.Connected {
		if p.connectedAt.IsZero() {
			p.connectedAt = now
		}
		p.lastConnected = now
		p.next = time.Time{}
		return
	}
	if !p.connectedAt.IsZero() {
		p.lastConnected = now
		lasted := now.Sub(p.connectedAt)
		p.connectedAt = time.Time{}
		if lasted >= redialStableConn {
			p.backoff = redialMinBackoff
		}
		r.logger.Debug("wanted peer lost", "peer", e.Peer.String(), "after", lasted.Round(time.Millisecond).String())
	}
	if !p.dialing && p.next.IsZero() {
		r.scheduleLocked(p, now)
	}
}

// dispatch starts the dials that are due and returns how long until the
// next one is.
func (r *redialer) dispatch(ctx context.Context) time.Duration {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	next := time.Hour
	for _, p := range r.peers {
		if p.next.IsZero() || p.dialing {
			continue
		}
		if p.next.After(now) {
			next = min(next, p.next.Sub(now))
			continue
		}
		if r.host.Network().Connectedness(p.id) == network.Connected {
			p.next = time.Time{}
			continue
		}
		if until, blocked := r.gater.blockedUntil(p.id); blocked {
			// Not while blocked: look again when the block ends.
			p.next = until
			next = min(next, until.Sub(now))
			continue
		}
		if ctx.Err() != nil {
			break
		}
		p.next = time.Time{}
		p.dialing = true
		info := peer.AddrInfo{ID: p.id, Addrs: slices.Clone(p.addrs)}
		r.dials.Add(1)
		r.attempts.Add(1)
		go r.dial(ctx, info)
	}
	return max(next, 0)
}

// dial makes one attempt and schedules the next if it failed.
func (r *redialer) dial(ctx context.Context, info peer.AddrInfo) {
	defer r.dials.Done()
	dctx, cancel := context.WithTimeout(ctx, redialDialTimeout)
	defer cancel()
	// libp2p's own per-address dial backoff (5 s and up) would refuse
	// the attempt; the redialer paces the dials itself.
	if s, ok := r.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		s.Backoff().Clear(info.ID)
	}
	start := time.Now()
	err := r.host.Connect(dctx, info)
	if ctx.Err() != nil {
		r.mu.Lock()
		if p, ok := r.peers[info.ID]; ok {
			p.dialing = false
		}
		r.mu.Unlock()
		return
	}
	r.dialed(info.ID, start, err)
}

// dialed records the end of a dial that started at start: the peer is
// connected, or its next dial is scheduled.
func (r *redialer) dialed(id peer.ID, start time.Time, err error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[id]
	if !ok {
		return // forgotten meanwhile
	}
	p.dialing = false
	// Connectedness, not err: a connection that came up and was lost
	// before this point reported its loss while the dial ran, which
	// scheduled nothing (p.dialing), so it must be scheduled here.
	if r.host.Network().Connectedness(id) == network.Connected {
		if p.connectedAt.IsZero() {
			p.connectedAt = now
		}
		p.lastConnected = now
		r.workedLocked(p)
		r.logger.Info("wanted peer reconnected", "peer", id.String(), "dial", now.Sub(start).Round(time.Millisecond).String())
		return
	}
	if err == nil {
		err = errors.New("the connection was lost again at once")
	}
	if p.elem != nil && !p.bootstrap && p.connectedAt.IsZero() && now.Sub(p.lastConnected) > r.forgetAfter {
		r.forgetLocked(id, "no connection since "+p.lastConnected.UTC().Format(time.RFC3339))
		return
	}
	r.scheduleLocked(p, now)
	r.logger.Debug("wanted peer redial failed", "peer", id.String(), "retry_in", p.next.Sub(now).Round(time.Millisecond).String(), "err", err)
	r.signal()
}

// workedLocked puts the addresses p is connected on now first in its
// list, so the file leads with the addresses that last worked.
func (r *redialer) workedLocked(p *wantedPeer) {
	var up []ma.Multiaddr
	for _, c := range r.host.Network().ConnsToPeer(p.id) {
		up = append(up, c.RemoteMultiaddr())
	}
	if len(up) == 0 || len(p.addrs) == 0 {
		return
	}
	addrs := slices.Clone(up)
	for _, a := range p.addrs {
		if !slices.ContainsFunc(addrs, a.Equal) {
			addrs = append(addrs, a)
		}
	}
	addrs = addrs[:min(len(addrs), redialMaxAddrs)]
	if !slices.EqualFunc(addrs, p.addrs, ma.Multiaddr.Equal) {
		p.addrs = addrs
		r.dirty = r.dirty || p.elem != nil
	}
}
