package replication

import (
	"sync"
	"time"
)

// reexchangeAfter are the default times (WithReexchange) after a peer
// connects at which heads are exchanged with it again. Pubsub delivers
// to a new peer only once it has learnt the peer's subscriptions (over
// plugins/ipfs on loopback, ~80 ms after connecting): an append announced
// in between is lost, and, if nothing is appended after it, would wait
// for anti-entropy.
var reexchangeAfter = []time.Duration{300 * time.Millisecond, 3 * time.Second}

// reexchanges are the peers due another head exchange: one goroutine
// (reexchangeLoop) serves them all, so a node with a thousand peers
// connecting does not keep a thousand goroutines waiting.
type reexchanges struct {
	mu   sync.Mutex
	due  map[string]reexchange
	wake chan struct{}
}

type reexchange struct {
	connected time.Time
	step      int // index into reexchangeAfter
}

func (q *reexchanges) init() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.due == nil {
		q.due = map[string]reexchange{}
		q.wake = make(chan struct{}, 1)
	}
}

// exchangeLater exchanges heads with peer again at reexchangeAfter (from
// now: a reconnect starts over), while it stays connected.
func (r *Replicator) exchangeLater(peer string) {
	if r.direct == nil || len(r.opts.reexchange) == 0 {
		return
	}
	q := &r.later
	q.init()
	q.mu.Lock()
	q.due[peer] = reexchange{connected: time.Now()}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// reexchangeLoop runs the exchanges exchangeLater schedules until the
// replicator stops.
func (r *Replicator) reexchangeLoop() {
	after := r.opts.reexchange
	q := &r.later
	q.init()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var ready []string
		next := time.Duration(-1)
		q.mu.Lock()
		for peer, x := range q.due {
			at := x.connected.Add(after[x.step])
			if wait := at.Sub(now); wait > 0 {
				if next < 0 || wait < next {
					next = wait
				}
				continue
			}
			ready = append(ready, peer)
			if x.step+1 == len(after) {
				delete(q.due, peer)
			} else {
				x.step++
				q.due[peer] = x
				if wait := x.connected.Add(after[x.step]).Sub(now); next < 0 || wait < next {
					next = wait
				}
			}
		}
		q.mu.Unlock()
		if len(ready) > 0 {
			live := r.livePeers(r.ctx)
			for _, peer := range ready {
				if !live[peer] || r.isBlocked(peer) {
					q.mu.Lock()
					delete(q.due, peer)
					q.mu.Unlock()
					continue
				}
				r.exchangeAsync(peer)
			}
		}
		if next < 0 {
			next = time.Hour
		}
		timer.Reset(next)
		select {
		case <-r.ctx.Done():
			return
		case <-q.wake:
		case <-timer.C:
		}
	}
}
