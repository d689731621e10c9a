package messenger

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/sdk"
)

// maxWanting bounds the Connect calls of the peer book under way at once
// (a peer seen through a relay may take a dial timeout to reach).
const maxWanting = 4

// maxGroupPeers bounds the peers the messenger tracks as sharing a group
// in one run (the network bounds what it remembers across restarts).
const maxGroupPeers = 4096

// groupPeer is a peer seen replicating one of our groups' logs.
type groupPeer struct {
	logs      map[replication.LogID]bool
	connected bool
	// lastUp is when the peer was last known connected (zero: never in
	// this run).
	lastUp time.Time
	// wanted: the network was asked to keep the peer (Connect).
	wanted bool
}

// peerBook tracks the peers that share a group: the network is asked to
// keep each connected and to remember it across restarts (a Connect with
// no address: network.ipfs then redials it after a restart from the
// addresses it listens on), and their comings and goings are logged and
// tell SyncStatus whether a group has a peer to sync with.
type peerBook struct {
	mu    sync.Mutex
	peers map[string]*groupPeer
	todo  []string // peers to want, in order seen
	wake  chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

func (m *Messenger) startPeerBook() {
	b := &m.book
	b.peers = map[string]*groupPeer{}
	b.wake = make(chan struct{}, 1)
	b.done = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	var events <-chan sdk.PeerEvent
	if pn, ok := m.cfg.Network.(sdk.PeerNotifier); ok {
		if ch, err := pn.PeerEvents(ctx); err == nil {
			events = ch
		} else {
			m.logger.Debug("peer events", "err", err)
		}
	}
	go m.peerLoop(ctx, events)
}

func (m *Messenger) stopPeerBook() {
	if m.book.cancel != nil {
		m.book.cancel()
		<-m.book.done
	}
}

// peerSeen is the replicator's WithPeerSeen hook: it must not block.
func (m *Messenger) peerSeen(peer string, log replication.LogID) {
	b := &m.book
	b.mu.Lock()
	p := b.peers[peer]
	if p == nil {
		if len(b.peers) >= maxGroupPeers {
			b.mu.Unlock()
			return
		}
		p = &groupPeer{logs: map[replication.LogID]bool{}}
		b.peers[peer] = p
	}
	isNew := !p.logs[log]
	p.logs[log] = true
	if !p.wanted {
		p.wanted = true
		b.todo = append(b.todo, peer)
	}
	b.mu.Unlock()
	if isNew {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

func (m *Messenger) peerLoop(ctx context.Context, events <-chan sdk.PeerEvent) {
	b := &m.book
	defer close(b.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxWanting)
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
			b.mu.Lock()
			todo := b.todo
			b.todo = nil
			b.mu.Unlock()
			for i, p := range todo {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				default:
					// All slots busy: the rest wait for the next wake.
					b.mu.Lock()
					b.todo = append(todo[i:], b.todo...)
					b.mu.Unlock()
					todo = nil
				}
				if todo == nil {
					break
				}
				wg.Go(func() {
					defer func() {
						<-slots
						select { // a slot is free: wake for what waits
						case b.wake <- struct{}{}:
						default:
						}
					}()
					m.wantPeer(ctx, p)
				})
			}
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			m.peerEvent(e)
		}
	}
}

// wantPeer asks the network to keep peer connected and remember it, and
// logs the groups it shares.
func (m *Messenger) wantPeer(ctx context.Context, peer string) {
	groups := m.groupsOfPeer(peer)
	m.logger.Info("group peer found", "peer", peer, "groups", groups)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.cfg.Network.Connect(cctx, sdk.PeerInfo{ID: peer}); err != nil {
		m.logger.Debug("keep group peer", "peer", peer, "err", err)
	}
	b := &m.book
	b.mu.Lock()
	if p := b.peers[peer]; p != nil && !p.connected {
		// PeerEvents reported it before it was known as a group peer.
		p.connected, p.lastUp = true, time.Now()
	}
	b.mu.Unlock()
}

func (m *Messenger) peerEvent(e sdk.PeerEvent) {
	b := &m.book
	b.mu.Lock()
	p := b.peers[e.Peer]
	if p == nil {
		b.mu.Unlock()
		return
	}
	was := p.connected
	p.connected = e.Connected
	if was || e.Connected {
		// Connected until now (a repeated "disconnected" moves nothing:
		// the peer was not up since the first).
		p.lastUp = time.Now()
	}
	b.mu.Unlock()
	if was == e.Connected {
		return
	}
	if e.Connected {
		m.logger.Info("group peer back", "peer", e.Peer, "groups", m.groupsOfPeer(e.Peer))
	} else {
		m.logger.Info("group peer lost", "peer", e.Peer, "groups", m.groupsOfPeer(e.Peer))
	}
}

// groupsOfPeer returns the fingerprints of the groups whose logs peer
// replicates.
func (m *Messenger) groupsOfPeer(peer string) []string {
	b := &m.book
	b.mu.Lock()
	var logs []replication.LogID
	if p := b.peers[peer]; p != nil {
		for id := range p.logs {
			logs = append(logs, id)
		}
	}
	b.mu.Unlock()
	var out []string
	m.mu.Lock()
	for gid, h := range m.groups {
		for _, id := range h.logs {
			if slices.Contains(logs, id) {
				out = append(out, gid.Fingerprint())
				break
			}
		}
	}
	m.mu.Unlock()
	slices.Sort(out)
	return out
}

// reachability says whether any peer replicating one of ids is connected
// now, connected being the set of peers the network has connections to;
// if none, when one last was (zero: never in this run).
func (m *Messenger) reachability(ids []replication.LogID, connected map[string]bool) (bool, time.Time) {
	b := &m.book
	b.mu.Lock()
	defer b.mu.Unlock()
	var last time.Time
	for id, p := range b.peers {
		if !slices.ContainsFunc(ids, func(l replication.LogID) bool { return p.logs[l] }) {
			continue
		}
		if connected[id] {
			return true, time.Now()
		}
		if p.lastUp.After(last) {
			last = p.lastUp
		}
	}
	return false, last
}
