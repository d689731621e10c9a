package replication

import (
	"slices"
	"time"

	"github.com/ipfs/go-cid"
)

// Heads still missing when a join ends (an ancestor nobody served yet, a
// writer whose permission has not arrived, a fetch that timed out) are
// kept and retried on a timer, 1 s, 2 s, 4 s … up to maxMissingRetry
// apart, instead of only at the next anti-entropy round: in a group of a
// thousand, that round is N seconds apart.
//
// A retry must not turn one claim into many fetches: a kept head is asked
// of the peers that named it (at most maxAskers, in turn), each ask spends
// a token of that peer's head fetch budget (the one its announcements
// spend; an empty budget postpones the ask, at no cost to the peer), and
// the heads an announcer named itself and did not serve are not kept (it
// has been penalised; anti-entropy retries them on some other peer's word).
const (
	// DefaultMissingRetry is the first retry delay of a head still
	// missing at the end of a join (WithMissingRetry); each retry doubles
	// it up to maxMissingRetry.
	DefaultMissingRetry = time.Second
	maxMissingRetry     = 30 * time.Second
	// maxKept bounds the kept heads of one log, maxKeptInline the inline
	// blocks kept with them.
	maxKept       = 1024
	maxKeptInline = 1 << 20
)

// keptHead is one head still missing after a join.
type keptHead struct {
	c      cid.Cid
	peers  []jobKey // who named it (at most maxAskers), asked in turn
	next   int      // index in peers of the one asked next
	inline []byte   // its block, when one came inline
	since  time.Time
	delay  time.Duration
	due    time.Time
}

func (kh *keptHead) addPeer(key jobKey) {
	if len(kh.peers) < maxAskers && !slices.ContainsFunc(kh.peers, func(k jobKey) bool { return k.peer == key.peer }) {
		kh.peers = append(kh.peers, key)
	}
}

// missed keeps the heads of job j that are still missing after its join
// by key's peer. fetched are the CIDs the join received.
func (rep *replica) missed(key jobKey, j *job, fetched map[string]bool) {
	first := rep.r.opts.missingRetry
	if first <= 0 {
		return
	}
	missing := rep.unknown(j.heads)
	if len(missing) == 0 {
		return
	}
	now := time.Now()
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.ctx.Err() != nil {
		return
	}
	for _, c := range missing {
		k := c.KeyString()
		if _, refused := rep.refused[k]; refused || rep.givenUpSet[k] {
			rep.dropKeptLocked(k)
			continue
		}
		if j.authored && !fetched[k] {
			continue // its announcer did not serve it: not retried on its word
		}
		kh := rep.kept[k]
		if kh == nil {
			if len(rep.kept) >= maxKept {
				continue
			}
			kh = &keptHead{c: c, since: now, delay: first, due: now.Add(first)}
			rep.kept[k] = kh
		}
		kh.addPeer(key)
		if b, ok := j.inline[k]; ok && kh.inline == nil && rep.keptBytes+len(b) <= maxKeptInline {
			kh.inline = b
			rep.keptBytes += len(b)
		}
	}
	rep.armLocked()
}

// namedKeptLocked adds peer to the askers of the kept heads among heads
// it just named.
func (rep *replica) namedKeptLocked(key jobKey, heads []cid.Cid) {
	if len(rep.kept) == 0 {
		return
	}
	for _, c := range heads {
		if kh := rep.kept[c.KeyString()]; kh != nil {
			kh.addPeer(key)
		}
	}
}

func (rep *replica) dropKeptLocked(k string) {
	if kh, ok := rep.kept[k]; ok {
		rep.keptBytes -= len(kh.inline)
		delete(rep.kept, k)
		if len(rep.kept) == 0 {
			rep.kept = map[string]*keptHead{} // a map never shrinks
		}
	}
}

// forgetKeptLocked drops a cut-off peer from the kept heads' askers, and
// the heads no one else named.
func (rep *replica) forgetKeptLocked(peer string) {
	for k, kh := range rep.kept {
		i := slices.IndexFunc(kh.peers, func(key jobKey) bool { return key.peer == peer })
		if i < 0 {
			continue
		}
		kh.peers = slices.Delete(kh.peers, i, i+1)
		if kh.next > i {
			kh.next--
		}
		if len(kh.peers) == 0 {
			rep.dropKeptLocked(k)
		}
	}
}

// armLocked sets the retry timer to the earliest due kept head. One timer
// per log, and time.AfterFunc: nothing waits while no retry is due.
func (rep *replica) armLocked() {
	if len(rep.kept) == 0 || rep.ctx.Err() != nil {
		return
	}
	var due time.Time
	for _, kh := range rep.kept {
		if due.IsZero() || kh.due.Before(due) {
			due = kh.due
		}
	}
	if rep.retryTimer != nil && !rep.retryAt.IsZero() && !rep.retryAt.After(due) {
		return // fires in time
	}
	d := max(time.Until(due), 0)
	if rep.retryTimer == nil {
		rep.retryTimer = time.AfterFunc(d, func() { rep.retryKept(false) })
	} else {
		rep.retryTimer.Reset(d)
	}
	rep.retryAt = due
}

// retryKept queues joins of the kept heads that are due (all of them when
// now is set), each with the next of the peers that named it.
func (rep *replica) retryKept(now bool) {
	if rep.ctx.Err() != nil {
		return
	}
	rep.mu.Lock()
	rep.retryAt = time.Time{}
	var due []cid.Cid
	askers := map[string]bool{}
	t := time.Now()
	for _, kh := range rep.kept {
		if now || !kh.due.After(t) {
			due = append(due, kh.c)
			for _, key := range kh.peers {
				askers[key.peer] = true
			}
		}
	}
	if len(due) == 0 {
		rep.armLocked()
		rep.mu.Unlock()
		return
	}
	rep.mu.Unlock()
	// Outside the lock: the log, the network and the replicator are asked.
	missing := rep.unknown(due)
	live := rep.r.livePeers(rep.ctx)
	for p := range askers {
		askers[p] = live[p] && !rep.r.isBlocked(p)
	}

	rep.mu.Lock()
	defer rep.mu.Unlock()
	still := map[string]bool{}
	for _, c := range missing {
		still[c.KeyString()] = true
	}
	type ask struct {
		heads  []cid.Cid
		inline [][]byte
	}
	asks := map[jobKey]*ask{}
	spent := map[string]bool{} // peers whose budget this round spent (or lacked)
	for _, c := range due {
		k := c.KeyString()
		kh := rep.kept[k]
		if kh == nil {
			continue
		}
		if !still[k] || rep.givenUpSet[k] {
			rep.dropKeptLocked(k) // the log has it, or it was given up
			continue
		}
		if _, refused := rep.refused[k]; refused {
			rep.dropKeptLocked(k)
			continue
		}
		if t.Sub(kh.since) >= rep.r.opts.giveUpAfter {
			rep.dropKeptLocked(k)
			if !rep.givenUpSet[k] {
				if len(rep.givenUpSet) >= maxGivenUp {
					clear(rep.givenUpSet)
				}
				rep.givenUpSet[k] = true
				rep.givenUp++
			}
			continue
		}
		// The next named peer that is connected, not cut off, and has
		// budget left.
		var to *jobKey
		for range len(kh.peers) {
			key := kh.peers[kh.next%len(kh.peers)]
			kh.next = (kh.next + 1) % len(kh.peers)
			if !askers[key.peer] {
				continue
			}
			if a := asks[key]; a != nil {
				to = &key
				break
			}
			if spent[key.peer] {
				continue
			}
			spent[key.peer] = true
			if !rep.r.budgets.take(key.peer+"\x00"+rep.topic, t) {
				continue
			}
			asks[key] = &ask{}
			to = &key
			break
		}
		kh.delay = min(2*kh.delay, max(maxMissingRetry, rep.r.opts.missingRetry))
		kh.due = t.Add(kh.delay)
		if to == nil {
			continue // none can be asked now: at the next step
		}
		a := asks[*to]
		a.heads = append(a.heads, kh.c)
		if kh.inline != nil {
			a.inline = append(a.inline, kh.inline)
		}
	}
	for key, a := range asks {
		if len(a.heads) > 0 {
			rep.enqueueLocked(key, a.heads, a.inline, true)
		}
	}
	rep.armLocked()
	if len(asks) > 0 {
		signal(rep.wake)
	}
}

// stopRetries stops the retry timer (the log stops being replicated).
func (rep *replica) stopRetries() {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.retryTimer != nil {
		rep.retryTimer.Stop()
	}
}
