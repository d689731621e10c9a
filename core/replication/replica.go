package replication

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/metrics"
)

// Bounds of the per-peer join queue of one log.
const (
	maxQueuedHeads  = 4 * MaxHeads
	maxQueuedInline = 1 << 20
	maxJoinRounds   = 1 << 12
)

// replica is one replicated log: its join queue (one job per peer, merged),
// what peers said they have, and its announcer.
type replica struct {
	r       *Replicator
	id      LogID
	topic   string
	keys    *TopicKeys
	channel string
	log     Log
	ctx     context.Context
	cancel  context.CancelFunc

	wake    chan struct{} // join queue has work
	pubWake chan struct{} // local entries await announcement

	mu        sync.Mutex
	jobs      map[jobKey]*job
	queue     []jobKey             // jobs in arrival order
	fetched   map[string]int       // CIDs joins fetched, not yet seen entering the log: how many joins hold each
	refused   map[string]time.Time // heads a join refused (not for misbehaviour), until when retries skip them
	local     []*log.Entry
	remote    map[string]*remoteState
	busy      map[string]bool // peers whose join is running
	pending   int
	lastSync  time.Time
	lastAnn   time.Time
	announced uint64
	nReceived uint64
	rejected  uint64
	added     uint64

	bulkRequests uint64 // bulk entry requests answered to us
	bulkReceived uint64 // entry blocks they carried
	bulkServed   uint64 // entry blocks this replica sent to peers

	missingSince map[string]time.Time // missing remote heads: since when
	givenUpSet   map[string]bool      // heads given up (no peer served them)
	givenUp      uint64
	prog         progress // catch-up figures (progress.go)

	// Heads still missing after a join, retried on a timer (missing.go).
	kept       map[string]*keptHead
	keptBytes  int         // inline blocks kept with them
	retryTimer *time.Timer // nil until a head is kept
	retryAt    time.Time   // when retryTimer fires (zero: not armed)
}

// via says how heads reached a replica, which decides who can be held
// responsible for them (see join).
type via uint8

const (
	viaAnnouncement via = iota // a pubsub announcement (From may be a relay)
	viaDigest                  // a pubsub digest (From may be a relay)
	viaDirect                  // a head exchange: the peer itself sent them
	// viaAuthored: a pubsub announcement naming heads to fetch, which
	// validating relays do not forward: the peer is its author and must
	// serve what it named.
	viaAuthored
)

// jobKey identifies a queued join: heads named directly by a peer and heads
// a pubsub message from it carried are joined apart, so that misbehaviour
// is attributed only where it is proven.
type jobKey struct {
	peer   string
	direct bool
}

type job struct {
	// bulk: the heads came from a head exchange, a digest or a retry (not
	// only from announcements), so much may be missing: fetch in bulk.
	bulk bool
	// authored: the peer announced the heads itself (viaAuthored).
	authored    bool
	heads       []cid.Cid
	inline      map[string][]byte
	inlineBytes int
}

type remoteState struct {
	heads   []cid.Cid
	missing []cid.Cid
	seen    time.Time
	direct  bool // heads came from a head exchange, not pubsub
}

func newReplica(r *Replicator, id LogID, keys *TopicKeys, channel string, l Log) *replica {
	ctx, cancel := context.WithCancel(r.ctx)
	rep := &replica{r: r, id: id, topic: keys.Topic, keys: keys, channel: channel, log: l, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), pubWake: make(chan struct{}, 1),
		jobs: map[jobKey]*job{}, fetched: map[string]int{}, busy: map[string]bool{}, refused: map[string]time.Time{},
		remote: map[string]*remoteState{}, missingSince: map[string]time.Time{}, givenUpSet: map[string]bool{},
		kept: map[string]*keptHead{}}
	context.AfterFunc(ctx, rep.stopRetries) // no goroutine until ctx ends
	return rep
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// unknown returns the heads not in the local log.
func (rep *replica) unknown(heads []cid.Cid) []cid.Cid {
	var out []cid.Cid
	for _, h := range heads {
		ok, err := rep.log.Has(rep.ctx, h)
		if err != nil || !ok {
			out = append(out, h)
		}
	}
	return out
}

// received records what peer has and queues a join if it has something
// this replica lacks. inline are entry blocks the peer sent along; how says
// how the heads came.
func (rep *replica) received(peer string, heads []cid.Cid, inline [][]byte, how via) {
	missing := rep.unknown(heads)
	direct := how == viaDirect
	for _, b := range inline {
		if c := blockCID(b); slices.ContainsFunc(missing, c.Equals) {
			rep.sawRemote(b)
		}
	}
	rep.mu.Lock()
	if direct {
		// A peer names them itself: fetch them again.
		for _, c := range missing {
			delete(rep.givenUpSet, c.KeyString())
		}
	} else {
		missing = rep.notGivenUpLocked(missing)
	}
	rep.nReceived++
	if _, known := rep.remote[peer]; !known {
		rep.r.peerSeen(peer, rep.id)
	}
	rep.remote[peer] = &remoteState{heads: slices.Clone(heads), missing: missing, seen: time.Now(), direct: direct}
	rep.namedKeptLocked(jobKey{peer: peer, direct: direct}, missing)
	if len(missing) == 0 {
		if how != viaAnnouncement {
			rep.lastSync = time.Now()
		}
		rep.mu.Unlock()
		return
	}
	rep.enqueueLocked(jobKey{peer: peer, direct: direct}, missing, inline, how != viaAnnouncement)
	if how == viaAuthored {
		rep.jobs[jobKey{peer: peer}].authored = true
	}
	rep.mu.Unlock()
	signal(rep.wake)
}

func (rep *replica) enqueueLocked(key jobKey, heads []cid.Cid, inline [][]byte, bulk bool) {
	j := rep.jobs[key]
	if j == nil {
		j = &job{inline: map[string][]byte{}}
		rep.jobs[key] = j
		rep.queue = append(rep.queue, key)
	}
	j.bulk = j.bulk || bulk
	for _, h := range heads {
		if !slices.ContainsFunc(j.heads, h.Equals) {
			j.heads = append(j.heads, h)
		}
	}
	if len(j.heads) > maxQueuedHeads {
		// A peer's later heads cover its earlier ones: keep the latest.
		j.heads = slices.Clone(j.heads[len(j.heads)-maxQueuedHeads:])
	}
	for _, b := range inline {
		if j.inlineBytes+len(b) > maxQueuedInline {
			break
		}
		k := blockCID(b).KeyString()
		if _, ok := j.inline[k]; !ok {
			j.inline[k] = b
			j.inlineBytes += len(b)
		}
	}
}

// pop takes the oldest queued job whose peer has no join running, and
// marks that peer busy; nil when there is none or WithParallelJoins run.
func (rep *replica) pop() (jobKey, *job) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.busy) >= rep.r.opts.parallelJoins {
		return jobKey{}, nil
	}
	i := slices.IndexFunc(rep.queue, func(k jobKey) bool { return !rep.busy[k.peer] })
	if i < 0 {
		return jobKey{}, nil
	}
	key := rep.queue[i]
	rep.queue = slices.Delete(rep.queue, i, i+1)
	j := rep.jobs[key]
	delete(rep.jobs, key)
	rep.busy[key.peer] = true
	return key, j
}

// done marks peer's join finished and wakes the queue (a job of that peer,
// or one held back by the bound, may be waiting).
func (rep *replica) done(peer string) {
	rep.mu.Lock()
	delete(rep.busy, peer)
	rep.mu.Unlock()
	signal(rep.wake)
}

// forget drops a cut-off peer's queued job and remote state.
func (rep *replica) forget(peer string) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	delete(rep.jobs, jobKey{peer: peer, direct: true})
	delete(rep.jobs, jobKey{peer: peer})
	rep.queue = slices.DeleteFunc(rep.queue, func(k jobKey) bool { return k.peer == peer })
	delete(rep.remote, peer)
	rep.forgetKeptLocked(peer)
}

// retryMissing queues joins of the remote heads still missing from live
// peers (a dropped announcement or a failed fetch is retried here).
func (rep *replica) retryMissing(live map[string]bool) {
	rep.mu.Lock()
	rep.giveUpLocked(time.Now())
	var peers []string
	for p, st := range rep.remote {
		if live[p] && len(st.missing) > 0 {
			peers = append(peers, p)
		}
	}
	rep.mu.Unlock()
	slices.Sort(peers)
	// A head nobody serves is asked of at most maxAskers peers a round.
	askers := map[string]int{}
	for _, p := range peers {
		rep.mu.Lock()
		st := rep.remote[p]
		if st == nil {
			rep.mu.Unlock()
			continue
		}
		heads := slices.Clone(st.heads)
		rep.mu.Unlock()
		missing := rep.unknown(heads)
		rep.mu.Lock()
		if st := rep.remote[p]; st != nil {
			st.missing = missing
		}
		// Heads a join refused (e.g. a writer without access) are not
		// retried every round: only when named again, or once the refusal
		// expires (membership may have changed).
		now := time.Now()
		retry := slices.DeleteFunc(slices.Clone(missing), func(c cid.Cid) bool {
			if rep.givenUpSet[c.KeyString()] || askers[c.KeyString()] >= maxAskers {
				return true
			}
			askers[c.KeyString()]++
			until, ok := rep.refused[c.KeyString()]
			if ok && now.After(until) {
				delete(rep.refused, c.KeyString())
				return false
			}
			return ok
		})
		if len(retry) > 0 {
			if st := rep.remote[p]; st != nil {
				rep.enqueueLocked(jobKey{peer: p, direct: st.direct}, retry, nil, true)
			}
		}
		rep.mu.Unlock()
	}
	signal(rep.wake)
}

// work runs the joins of this log: up to WithParallelJoins at once, one
// per peer, each peer's jobs in arrival order.
func (rep *replica) work() {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-rep.ctx.Done():
			return
		case <-rep.wake:
		}
		for rep.ctx.Err() == nil {
			key, j := rep.pop()
			if j == nil {
				break
			}
			if rep.r.isBlocked(key.peer) {
				rep.done(key.peer)
				continue
			}
			wg.Go(func() {
				defer rep.done(key.peer)
				rep.join(key, j)
			})
		}
	}
}

// join joins the heads of one job, continuing past join limits, and deals
// with misbehaviour the log finds (see blame).
func (rep *replica) join(key jobKey, j *job) {
	peer := key.peer

	// Far behind, a join walking the DAG one level per bitswap round trip
	// is slow: heads from a head exchange, a digest or a retry are fetched
	// in bulk from the peer that named them, when it can.
	var bulk *bulkFetch
	if j.bulk && rep.r.canBulk(peer) {
		bulk = newBulkFetch(rep, peer)
	}
	stack := [][]cid.Cid{j.heads}
	ok := true
	fetched := map[string]bool{}
	added := 0
	if j.bulk {
		rep.catchupStarted(peer, len(j.heads))
		defer func() { rep.catchupFinished(peer, added) }()
	}
	for round := 0; len(stack) > 0 && round < maxJoinRounds && rep.ctx.Err() == nil; round++ {
		heads := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		// Heads a peer announced itself are asked of it alone first: if
		// it cannot serve them, it lied (or left), and nobody else is
		// asked on its word.
		g := &joinGetter{rep: rep, inline: j.inline, store: rep.r.blocks, bulk: bulk, noFallback: j.authored && bulk != nil}
		ctx, cancel := context.WithCancel(rep.ctx)
		stop := g.watchdog(ctx, cancel, rep.r.opts.fetchTimeout)
		res, err := rep.log.Join(ctx, heads, peer, log.FetchFrom(g), log.Verified(verifiedInline.has))
		stop()
		cancel()
		if bulk != nil {
			bulk.wait() // a prefetch ends with ctx
		}
		rep.settle(g.got, res.Added)
		for _, c := range g.got {
			fetched[c.KeyString()] = true
		}

		var je *log.JoinError
		switch {
		case err == nil:
		case errors.As(err, &je):
			for _, rj := range res.Rejected {
				if Misbehaviour(rj.Err) {
					rep.mu.Lock()
					rep.rejected += uint64(len(res.Rejected))
					rep.mu.Unlock()
					if bulk != nil && bulk.received(rj.CID) {
						// The peer sent these bytes itself, over a stream.
						rep.r.cutOff(bulk.peer, fmt.Sprintf("entries response: log rejected entry %s: %v", rj.CID, rj.Err))
						return
					}
					rep.blame(key, j, rj)
					return
				}
			}
			ok = false
			rep.refuse(heads, res.Rejected)
			if len(res.Pending) > 0 {
				stack = append(stack, heads, res.Pending)
			}
			rep.r.logger.Debug("join incomplete", "log", rep.id, "peer", peer, "err", err)
		default:
			ok = false
			rep.r.logger.Debug("join failed", "log", rep.id, "peer", peer, "err", err)
		}
		metrics.EntriesJoined.Add(float64(len(res.Added)))
		metrics.Rejected(res.Rejected)
		added += len(res.Added)
		rep.mu.Lock()
		rep.added += uint64(len(res.Added))
		rep.pending = len(res.Pending)
		rep.mu.Unlock()
	}
	rep.mu.Lock()
	st := rep.remote[peer]
	var heads []cid.Cid
	if st != nil {
		heads = slices.Clone(st.heads)
	}
	rep.mu.Unlock()
	missing := rep.unknown(heads)
	if j.authored {
		// Fetched but refused (e.g. a writer without access yet) is
		// not this fault.
		unserved := slices.DeleteFunc(rep.unknown(j.heads), func(c cid.Cid) bool { return fetched[c.KeyString()] })
		if len(unserved) > 0 {
			rep.r.score(peer, scoreNotServed*float64(len(unserved)), "announced heads it did not serve")
		}
	}
	rep.mu.Lock()
	if st := rep.remote[peer]; st != nil {
		st.missing = missing
	}
	if ok {
		rep.lastSync = time.Now()
	}
	rep.mu.Unlock()
	rep.missed(key, j, fetched)
}

// blame deals with an entry the log rejected as proof of misbehaviour. A
// peer is cut off only when it is provably the author of the bad data:
//
//   - heads it named itself in a head exchange (key.direct): an honest
//     replica names only heads it accepted;
//   - an inline entry of a pubsub message that is malformed or badly
//     signed, when the network validates pubsub (WithPubsubValidated):
//     every honest relay checks exactly that before forwarding, so the
//     peer that handed it to us did not check, and misbehaved.
//
// Anything else that came over pubsub (an entry fetched because an
// announcement named it, or an inline entry failing a check relays cannot
// make) may have been forwarded in good faith: it is logged and dropped,
// and the peer is asked for its heads directly, so that a liar is then
// caught by the head exchange.
func (rep *replica) blame(key jobKey, j *job, rj log.Rejection) {
	reason := fmt.Sprintf("log rejected entry %s: %v", rj.CID, rj.Err)
	if key.direct {
		rep.r.cutOff(key.peer, reason)
		return
	}
	_, inline := j.inline[rj.CID.KeyString()]
	relayChecked := errors.Is(rj.Err, log.ErrMalformed) || errors.Is(rj.Err, log.ErrHashMismatch) ||
		errors.Is(rj.Err, log.ErrBadSignature)
	if inline && relayChecked && rep.r.opts.pubsubValidated {
		rep.r.cutOff(key.peer, "pubsub inline "+reason)
		return
	}
	rep.r.logger.Warn("dropped bad data forwarded over pubsub; asking the forwarder directly",
		"log", rep.id, "peer", key.peer, "reason", reason)
	rep.mu.Lock()
	if st := rep.remote[key.peer]; st != nil && !st.direct {
		delete(rep.remote, key.peer) // not retried; the head exchange replaces it
	}
	rep.mu.Unlock()
	rep.r.exchangeAsync(key.peer)
}

// maxRefused bounds the refused-heads memory of one log.
const maxRefused = 4096

// refuse remembers the heads among joined that a join refused for write
// access, so that anti-entropy does not retry them every round.
func (rep *replica) refuse(joined []cid.Cid, rejected []log.Rejection) {
	until := time.Now().Add(10 * rep.r.opts.interval)
	rep.mu.Lock()
	defer rep.mu.Unlock()
	for _, rj := range rejected {
		// Only an access refusal: a head rejected for depending on a
		// missing block (ErrBadAncestor) must be retried next round.
		// A refusal state arriving later can lift (ErrNotYetAllowed) is
		// retried at once when that state arrives (RetryMissing) and on
		// every anti-entropy round.
		if !errors.Is(rj.Err, log.ErrNotAllowed) || errors.Is(rj.Err, log.ErrNotYetAllowed) || !slices.ContainsFunc(joined, rj.CID.Equals) {
			continue
		}
		if len(rep.refused) >= maxRefused {
			clear(rep.refused)
		}
		rep.refused[rj.CID.KeyString()] = until
	}
}

// settle forgets the fetched CIDs that did not enter the log; those that
// did are forgotten by watch when the log reports them.
func (rep *replica) settle(got []cid.Cid, added []*log.Entry) {
	if len(got) == 0 {
		return
	}
	in := make(map[string]struct{}, len(added))
	for _, e := range added {
		in[e.CID().KeyString()] = struct{}{}
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	for _, c := range got {
		k := c.KeyString()
		if _, ok := in[k]; ok {
			continue
		}
		// Another join may hold it too (and add it): only this join's
		// hold goes.
		if n, ok := rep.fetched[k]; ok {
			if n <= 1 {
				delete(rep.fetched, k)
			} else {
				rep.fetched[k] = n - 1
			}
		}
	}
	rep.shrinkFetchedLocked()
}

// shrinkFetchedLocked drops the fetched map's buckets once it is empty: a
// Go map never shrinks, and a catch-up would leave each log holding the
// buckets of its peak.
func (rep *replica) shrinkFetchedLocked() {
	if len(rep.fetched) == 0 {
		rep.fetched = map[string]int{}
	}
}

// watch follows the log's new entries and queues the local ones (those no
// join of ours fetched) for announcement.
func (rep *replica) watch(entries <-chan *log.Entry) {
	for e := range entries {
		rep.sawEntry(e)
		k := e.CID().KeyString()
		rep.mu.Lock()
		rep.dropKeptLocked(k)
		if _, remote := rep.fetched[k]; remote {
			delete(rep.fetched, k)
			rep.shrinkFetchedLocked()
			rep.mu.Unlock()
			continue
		}
		rep.local = append(rep.local, e)
		rep.mu.Unlock()
		signal(rep.pubWake)
	}
}

// publish announces local entries: the heads, with the newest small
// entries inline. Appends that come faster than announcements go out
// together.
func (rep *replica) publish() {
	// Pace announcements with a token bucket: up to announceBurst go out
	// at once, then one per pace; appends during a pause go out together,
	// so a burst does not overflow pubsub queues, while a lone append, or
	// a few in quick succession (a reply, a message and its metadata),
	// is announced at once.
	pace := rep.r.opts.pace
	credit, last := float64(announceBurst), time.Now()
	for {
		select {
		case <-rep.ctx.Done():
			return
		case <-rep.pubWake:
		}
		rep.mu.Lock()
		local := rep.local
		rep.local = nil
		rep.mu.Unlock()
		if len(local) == 0 {
			continue
		}
		rep.announce(local)
		if pace <= 0 {
			continue
		}
		now := time.Now()
		credit = min(float64(announceBurst), credit+float64(now.Sub(last))/float64(pace)) - 1
		last = now
		if credit >= 0 {
			continue
		}
		t := time.NewTimer(time.Duration(-credit * float64(pace)))
		select {
		case <-rep.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		credit, last = 0, time.Now()
	}
}

// announceBurst is how many announcements of one log may go out back to
// back before WithAnnouncePace spaces them.
const announceBurst = 4

// announce publishes local entries (in append order) in as many
// announcements as it takes to carry every small one inline. Local entries
// form a chain (each append's next holds the previous append), so an
// announcement before the last names just the newest entry it carries;
// the last names the current heads.
func (rep *replica) announce(local []*log.Entry) {
	limit, budget := rep.r.opts.inlineEntry, rep.r.opts.inlineBudget
	for len(local) > 0 && rep.ctx.Err() == nil {
		var inline [][]byte
		var inlineCIDs []cid.Cid // inline[i]'s CID
		used, n := 0, 0
		for n < len(local) && len(inline) < MaxInline {
			b := local[n].Bytes()
			if len(b) <= limit {
				if used+len(b) > budget {
					break
				}
				used += len(b)
				inline = append(inline, b)
				inlineCIDs = append(inlineCIDs, local[n].CID())
				vouched.add(local[n].CID()) // signed or verified here
			}
			n++
		}
		if n == 0 {
			n = 1 // an entry alone over the budget: announce it bare
		}
		chunk := local[:n]
		local = local[n:]
		heads := []cid.Cid{chunk[len(chunk)-1].CID()}
		if len(local) == 0 {
			heads = sortHeads(rep.log.Heads())
		}
		if len(heads) == 0 {
			return
		}
		sortInline(inline, inlineCIDs)
		rep.send(&Announcement{Log: rep.id, Heads: heads, Inline: inline})
	}
	// Peers that connected just now may not get it over pubsub yet.
	rep.r.exchangeFresh(rep.topic)
}

// sortInline sorts inline entries by CID (as an announcement carries
// them), cids[i] being inline[i]'s: each is hashed once, when appended or
// verified, not again per comparison.
func sortInline(inline [][]byte, cids []cid.Cid) {
	idx := make([]int, len(inline))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return compareCIDs(cids[a], cids[b]) })
	sorted := make([][]byte, len(inline))
	for i, j := range idx {
		sorted[i] = inline[j]
	}
	copy(inline, sorted)
}

// digest publishes the heads for anti-entropy.
func (rep *replica) digest(ctx context.Context) {
	heads := sortHeads(rep.log.Heads())
	if len(heads) == 0 {
		return
	}
	rep.sendCtx(ctx, &Announcement{Digest: true, Log: rep.id, Heads: heads})
}

func (rep *replica) send(a *Announcement) { rep.sendCtx(rep.ctx, a) }

func (rep *replica) sendCtx(ctx context.Context, a *Announcement) {
	data, err := rep.keys.Seal(a)
	if err != nil {
		rep.r.logger.Error("encode announcement", "log", rep.id, "err", err)
		return
	}
	if err := rep.r.net.Publish(ctx, rep.topic, data); err != nil {
		rep.r.logger.Debug("publish announcement", "log", rep.id, "err", err)
		return
	}
	rep.mu.Lock()
	rep.announced++
	rep.lastAnn = time.Now()
	rep.mu.Unlock()
}

// joinGetter serves a join: inline blocks first, then the network. It
// records what it yields so that watch can tell joined entries from local
// appends.
type joinGetter struct {
	rep    *replica
	inline map[string][]byte
	store  *BlockStore
	bulk   *bulkFetch // nil: no bulk fetch
	// noFallback: what the bulk fetch's peer did not serve is not asked
	// of the network.
	noFallback bool
	got        []cid.Cid
	last       atomic.Int64 // unix nanoseconds of the last fetch activity
}

// watchdog cancels the join when no block has arrived for stall: a long
// catch-up that keeps making progress is never cut short, a fetch nobody
// can serve is. It returns a function that stops the watchdog.
func (g *joinGetter) watchdog(ctx context.Context, cancel context.CancelFunc, stall time.Duration) func() {
	g.touch()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(stall/4, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if time.Since(time.Unix(0, g.last.Load())) > stall {
					cancel()
					return
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (g *joinGetter) touch() { g.last.Store(time.Now().UnixNano()) }

func (g *joinGetter) record(c cid.Cid, data []byte, source string) {
	metrics.BlocksFetched.WithLabelValues(source).Inc()
	g.touch()
	g.rep.fetchedBlock(data)
	g.got = append(g.got, c)
	g.rep.mu.Lock()
	g.rep.fetched[c.KeyString()]++
	g.rep.mu.Unlock()
}

func (g *joinGetter) GetMany(ctx context.Context, cids []cid.Cid) iter.Seq2[log.Block, error] {
	return func(yield func(log.Block, error) bool) {
		g.touch()
		var rest []cid.Cid
		for _, c := range cids {
			d, ok := g.inline[c.KeyString()]
			source := metrics.SourceInline
			if !ok && g.bulk != nil {
				d, ok = g.bulk.take(c)
				source = metrics.SourceBulk
			}
			if ok {
				g.record(c, d, source)
				if !yield(log.Block{CID: c, Data: d}, nil) {
					return
				}
				continue
			}
			rest = append(rest, c)
		}
		if len(rest) > 0 && g.bulk != nil && g.bulk.fetch(ctx, rest) {
			g.touch()
			missing := rest[:0:0]
			for _, c := range rest {
				d, ok := g.bulk.take(c)
				if !ok {
					missing = append(missing, c)
					continue
				}
				g.record(c, d, metrics.SourceBulk)
				if !yield(log.Block{CID: c, Data: d}, nil) {
					return
				}
			}
			rest = missing
			if g.noFallback {
				for _, c := range rest {
					if !yield(log.Block{CID: c}, errNotServed) {
						return
					}
				}
				return
			}
		}
		if len(rest) == 0 {
			return
		}
		for b, err := range g.store.GetMany(ctx, rest) {
			if err == nil && b.CID.Defined() {
				g.record(b.CID, b.Data, metrics.SourceNetwork)
			}
			if !yield(b, err) {
				return
			}
		}
	}
}
