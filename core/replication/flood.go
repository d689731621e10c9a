package replication

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
)

// What a peer's claims cost it. A flood of announcements naming heads
// that must be fetched is bounded per peer (a token bucket), and whatever
// turns out false lowers the peer's application score in the network's
// peer scoring (sdk.PeerScorer), so that a flooder is pruned from meshes,
// then ignored, then cut off.
const (
	// fetchBudgetBurst and fetchBudgetRate: a peer may name heads to fetch
	// in this many announcements at once, then this many per second.
	// Announcements whose heads are all inline or already here cost
	// nothing.
	fetchBudgetBurst = 64
	fetchBudgetRate  = 16
	// maxBudgets bounds the peers tracked.
	maxBudgets = 4096
	// scoreOverBudget is what an announcement over a peer's fetch budget
	// costs it; scoreNotServed what heads it announced and could not
	// serve cost it (sdk.PeerScorer's scale: -10 is one clear fault).
	scoreOverBudget = -1
	scoreNotServed  = -10
	// scoreFlushInterval: score changes are sent to the network in
	// batches, not one call per message.
	scoreFlushInterval = 100 * time.Millisecond
	// maxAskers: a missing head is retried with at most this many of the
	// peers that named it per anti-entropy round.
	maxAskers = 3
	// DefaultGiveUpAfter is how long heads no peer serves stay missing
	// before the replica gives them up (WithGiveUpAfter).
	DefaultGiveUpAfter = 2 * time.Minute
	// maxGivenUp bounds the given-up heads remembered per log.
	maxGivenUp = 4096
)

// errNotServed: the peer that announced a head did not serve it when
// asked directly.
var errNotServed = errors.New("the announcing peer did not serve it")

type bucket struct {
	tokens float64
	last   time.Time
}

// budgets are the per-peer head fetch budgets, and the score changes not
// yet sent to the network.
type budgets struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	score   map[string]float64
	reasons map[string]string
}

func newBudgets() *budgets {
	return &budgets{buckets: map[string]*bucket{}, score: map[string]float64{}, reasons: map[string]string{}}
}

// take spends one token of the fetch budget key names (a peer and a
// topic); false when it has none.
func (b *budgets) take(peer string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.buckets[peer]
	if k == nil {
		if len(b.buckets) >= maxBudgets {
			for p, old := range b.buckets {
				if now.Sub(old.last) > time.Minute {
					delete(b.buckets, p)
				}
			}
			if len(b.buckets) >= maxBudgets {
				clear(b.buckets)
			}
		}
		k = &bucket{tokens: fetchBudgetBurst, last: now}
		b.buckets[peer] = k
	}
	k.tokens = min(fetchBudgetBurst, k.tokens+now.Sub(k.last).Seconds()*fetchBudgetRate)
	k.last = now
	if k.tokens < 1 {
		return false
	}
	k.tokens--
	return true
}

// forget drops peer's budgets (of every topic).
func (b *budgets) forget(peer string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	prefix := peer + "\x00"
	for k := range b.buckets {
		if strings.HasPrefix(k, prefix) {
			delete(b.buckets, k)
		}
	}
}

func (b *budgets) add(peer string, delta float64, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.score[peer]; !ok && len(b.score) >= maxBudgets {
		return
	}
	b.score[peer] += delta
	b.reasons[peer] = reason
}

func (b *budgets) drain() (map[string]float64, map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, r := b.score, b.reasons
	b.score, b.reasons = map[string]float64{}, map[string]string{}
	return s, r
}

// score lowers (or raises) peer's application score in the network, if
// it scores peers; changes are sent in batches by scoreLoop.
func (r *Replicator) score(peer string, delta float64, reason string) {
	if r.scorer == nil || peer == "" || peer == r.self {
		return
	}
	r.budgets.add(peer, delta, reason)
}

func (r *Replicator) scoreLoop() {
	t := time.NewTicker(scoreFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		deltas, reasons := r.budgets.drain()
		for peer, d := range deltas {
			if err := r.scorer.ScorePeer(r.ctx, peer, d, reasons[peer]); err != nil {
				r.logger.Debug("score peer", "peer", peer, "delta", d, "err", err)
			}
		}
	}
}

// selfContained reports whether every head is inline or already here:
// such an announcement asks nothing of the network, and a relay can
// forward it having checked all it names.
func (rep *replica) selfContained(a *Announcement) bool {
	inline := make(map[string]bool, len(a.Inline))
	for _, b := range a.Inline {
		inline[blockCID(b).KeyString()] = true
	}
	for _, h := range a.Heads {
		if inline[h.KeyString()] {
			continue
		}
		if ok, err := rep.log.Has(rep.ctx, h); err != nil || !ok {
			return false
		}
	}
	return true
}

// fetchAllowed spends one token of peer's head fetch budget for topic,
// and costs the peer score when it has none left. Budgets are per topic:
// an honest peer in many groups (a replication node's digests) does not
// spend one group's budget on another's.
func (r *Replicator) fetchAllowed(peer, topic string) bool {
	if r.budgets.take(peer+"\x00"+topic, time.Now()) {
		return true
	}
	r.score(peer, scoreOverBudget, "announcements over the head fetch budget")
	r.logger.Debug("announcement dropped: over the head fetch budget", "peer", peer, "topic", topic)
	return false
}

// giveUp drops the heads that have been missing longer than the give-up
// delay from what peers are said to have, and counts them; heads named
// again in a head exchange are fetched again.
func (rep *replica) giveUpLocked(now time.Time) {
	after := rep.r.opts.giveUpAfter
	current := map[string]bool{}
	for _, st := range rep.remote {
		for _, c := range st.missing {
			current[c.KeyString()] = true
		}
	}
	for k := range rep.missingSince {
		if !current[k] {
			delete(rep.missingSince, k)
		}
	}
	gone := map[string]bool{}
	for k := range current {
		since, ok := rep.missingSince[k]
		if !ok {
			rep.missingSince[k] = now
			continue
		}
		if now.Sub(since) >= after {
			gone[k] = true
		}
	}
	if len(gone) == 0 {
		return
	}
	for k := range gone {
		delete(rep.missingSince, k)
		if len(rep.givenUpSet) >= maxGivenUp {
			clear(rep.givenUpSet)
		}
		rep.givenUpSet[k] = true
		rep.givenUp++
	}
	for _, st := range rep.remote {
		st.missing = dropKeys(st.missing, gone)
		st.heads = dropKeys(st.heads, gone)
	}
	for _, j := range rep.jobs {
		j.heads = dropKeys(j.heads, gone)
	}
	rep.r.logger.Info("gave up heads no peer served", "log", rep.id, "heads", len(gone), "after", after)
}

func dropKeys(cs []cid.Cid, gone map[string]bool) []cid.Cid {
	out := cs[:0:0]
	for _, c := range cs {
		if !gone[c.KeyString()] {
			out = append(out, c)
		}
	}
	return out
}

// notGivenUpLocked returns heads without those given up.
func (rep *replica) notGivenUpLocked(heads []cid.Cid) []cid.Cid {
	if len(rep.givenUpSet) == 0 {
		return heads
	}
	out := heads[:0:0]
	for _, h := range heads {
		if !rep.givenUpSet[h.KeyString()] {
			out = append(out, h)
		}
	}
	return out
}
