// Package peersource records how the node came to know each network peer
// it connected to: through a discovery plugin ("mdns" for
// discovery.mdns), a group's rendezvous on the DHT ("dht"), the network's
// bootstrap list ("bootstrap"), or a connect request ("manual", `skein
// peers connect`). `skein peers` shows it.
//
// A Book is filled by whoever causes a connection (the node's discovery
// loop, the replicator's rendezvous, the client API) and read by the
// client API. It is bounded, and kept in memory only: after a restart a
// peer the network dials again from its own list (plugins/ipfs remembers
// the peers it was asked to connect to) shows no source until one is
// recorded again.
package peersource

import (
	"slices"
	"sync"
)

// Sources that are not a discovery plugin's name.
const (
	// Manual: a connect request through the client API.
	Manual = "manual"
	// Bootstrap: a peer of the network plugin's bootstrap list.
	Bootstrap = "bootstrap"
	// DHT: found by a group's rendezvous lookup on the DHT.
	DHT = "dht"
)

// DefaultMaxPeers bounds a Book made with NewBook(0).
const DefaultMaxPeers = 4096

// Book maps peer ids to the ways they were found. Safe for concurrent use.
type Book struct {
	max int

	mu    sync.Mutex
	seq   uint64
	peers map[string]*entry
}

type entry struct {
	sources []string // in the order first recorded
	seq     uint64   // when last recorded
}

// NewBook returns an empty book of at most max peers (DefaultMaxPeers
// if max <= 0); beyond, the peer recorded least recently is forgotten.
func NewBook(max int) *Book {
	if max <= 0 {
		max = DefaultMaxPeers
	}
	return &Book{max: max, peers: map[string]*entry{}}
}

// Record notes that peer was found through source. Empty arguments are
// ignored.
func (b *Book) Record(peer, source string) {
	if b == nil || peer == "" || source == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e, ok := b.peers[peer]
	if !ok {
		if len(b.peers) >= b.max {
			b.forgetOldestLocked()
		}
		e = &entry{}
		b.peers[peer] = e
	}
	e.seq = b.seq
	if !slices.Contains(e.sources, source) {
		e.sources = append(e.sources, source)
	}
}

func (b *Book) forgetOldestLocked() {
	var oldest string
	var seq uint64
	for id, e := range b.peers {
		if oldest == "" || e.seq < seq {
			oldest, seq = id, e.seq
		}
	}
	delete(b.peers, oldest)
}

// Sources returns how peer was found, first way first; nil if unknown.
func (b *Book) Sources(peer string) []string {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.peers[peer]; ok {
		return slices.Clone(e.sources)
	}
	return nil
}

// Len is the number of peers in the book.
func (b *Book) Len() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.peers)
}
