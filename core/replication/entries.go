package replication

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
)

// EntriesProtocol is the direct-request protocol of the bulk entry fetch:
// a replica far behind asks a peer that replicates the log for a batch of
// the entries it lacks, instead of walking the DAG one bitswap round trip
// per level.
const EntriesProtocol = "/skein/entries/1"

// Defaults of the bulk entry fetch (WithBulkFetch).
const (
	// DefaultBulkEntries is the most entries one bulk request asks for.
	DefaultBulkEntries = 1024
	// DefaultBulkBytes is the block bytes one bulk request asks for.
	DefaultBulkBytes = 1 << 20
)

// bulkRetryAfter is how long a peer whose bulk fetch failed (it lacks the
// protocol, or the request failed) is not asked again; its blocks are
// fetched through the network's block getter meanwhile.
const bulkRetryAfter = time.Minute

// maxBulkCache bounds, in batches, what a join holds prefetched and not yet
// consumed: past it, no continuation is prefetched.
const maxBulkCache = 4

// EntryReader is what a replicated Log needs to answer bulk entry
// requests: reading one of its entries (*log.Log has it). A replica whose
// log lacks it refuses them.
type EntryReader interface {
	Get(ctx context.Context, c cid.Cid) (*log.Entry, error)
}

var _ EntryReader = (*log.Log)(nil)

// EntryRunReader is an optional EntryReader capability: reading an entry
// together with the entries just before it in the log's order (one
// batched block read; *log.Log has it). The responder of a bulk request
// walks down the log, so it reads what it sends in runs, not one block
// read (one cross-process call with the network out of process) per
// entry.
type EntryRunReader interface {
	GetRun(ctx context.Context, c cid.Cid, n int) ([]*log.Entry, error)
}

var _ EntryRunReader = (*log.Log)(nil)

// entryRun is how many entries before a wanted one a responder reads with
// it.
const entryRun = 255

// handleEntries answers a bulk entry request, only for a log this replica
// replicates (the log id is derived from the topic, so only a peer that
// knows the topic can name it).
func (r *Replicator) handleEntries(ctx context.Context, from string, req []byte) ([]byte, error) {
	if r.isBlocked(from) {
		return nil, fmt.Errorf("entries request from %q: %w", from, ErrBlockedPeer)
	}
	x, err := DecodeEntriesRequest(req)
	if err != nil {
		r.cutOff(from, "entries request: "+err.Error())
		return nil, fmt.Errorf("entries request from %q: %w", from, err)
	}
	rep := r.replica(x.Log)
	if rep == nil || !r.proofs.has(from, rep.topic) {
		// The same refusal whether the log is unknown or the peer has
		// not proved its topic on this connection.
		return nil, fmt.Errorf("entries request from %q: %w", from, ErrUnknownLog)
	}
	reader, ok := rep.log.(EntryReader)
	if !ok {
		return nil, fmt.Errorf("entries request from %q: %w: the log cannot be read", from, ErrUnknownLog)
	}
	resp, err := collectEntries(ctx, reader, x, r.opts.bulkEntries, r.opts.bulkBytes)
	if err != nil {
		return nil, fmt.Errorf("entries request from %q: %w", from, err)
	}
	rep.mu.Lock()
	rep.bulkServed += uint64(len(resp.Blocks))
	rep.mu.Unlock()
	return resp.MarshalBinary()
}

// walkItem is one entry the responder's walk reached.
type walkItem struct {
	c      cid.Cid
	e      *log.Entry
	have   bool // reachable from the requester's heads
	popped bool
}

// walkQueue is a max-heap by (time, cid): an entry's time exceeds every
// time under its next, so when an entry is popped every entry above it has
// been, and whether the requester's heads reach it is known.
type walkQueue []*walkItem

func (q walkQueue) Len() int { return len(q) }
func (q walkQueue) Less(i, j int) bool {
	if q[i].e.Time != q[j].e.Time {
		return q[i].e.Time > q[j].e.Time
	}
	return compareCIDs(q[i].c, q[j].c) > 0
}
func (q walkQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *walkQueue) Push(x any)   { *q = append(*q, x.(*walkItem)) }
func (q *walkQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

// collectEntries walks down from the wanted CIDs, newest first, and
// returns the entries not reachable from the requester's heads, within the
// request's limits and the responder's own (maxEntries, maxBytes). The
// walk loads at most a bounded number of entries; past it, what the walk
// could not settle may be sent although the requester has it (harmless:
// the requester's join skips entries it has).
func collectEntries(ctx context.Context, l EntryReader, x *EntriesRequest, maxEntries, maxBytes int) (*EntriesResponse, error) {
	limitN, limitB := min(x.MaxEntries, maxEntries), min(x.MaxBytes, maxBytes)
	budget := 4*limitN + 1024 // entries loaded at most
	state := map[string]*walkItem{}
	var q walkQueue
	wanted := 0 // items in q not reachable from the requester's heads
	// Entries read ahead in runs (EntryRunReader), not yet reached.
	ahead := map[string]*log.Entry{}
	runs, _ := l.(EntryRunReader)
	loaded := 0
	get := func(c cid.Cid, have bool) (*log.Entry, error) {
		if e, ok := ahead[c.KeyString()]; ok {
			delete(ahead, c.KeyString())
			return e, nil
		}
		// Read ahead only below what is to be sent: below the requester's
		// heads the walk reads little.
		if runs == nil || have || loaded >= budget {
			return l.Get(ctx, c)
		}
		run, err := runs.GetRun(ctx, c, min(entryRun, budget-loaded))
		if err != nil {
			return nil, err
		}
		loaded += len(run)
		for _, e := range run[1:] {
			ahead[e.CID().KeyString()] = e
		}
		return run[0], nil
	}
	push := func(c cid.Cid, have bool) error {
		if it, ok := state[c.KeyString()]; ok {
			if have && !it.have {
				it.have = true
				if !it.popped {
					wanted--
				}
			}
			return nil
		}
		if len(state) >= budget {
			return nil
		}
		e, err := get(c, have)
		if errors.Is(err, log.ErrNotFound) {
			return nil // the responder lacks it: someone else may have it
		}
		if err != nil {
			return fmt.Errorf("read entry %s: %w", c, err)
		}
		it := &walkItem{c: c, e: e, have: have}
		state[c.KeyString()] = it
		heap.Push(&q, it)
		if !have {
			wanted++
		}
		return nil
	}
	for _, c := range x.Have {
		if err := push(c, true); err != nil {
			return nil, err
		}
	}
	for _, c := range x.Want {
		if err := push(c, false); err != nil {
			return nil, err
		}
	}
	resp := &EntriesResponse{Log: x.Log}
	size := 0
	var cont []*walkItem
	for q.Len() > 0 && wanted > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it := heap.Pop(&q).(*walkItem)
		it.popped = true
		if !it.have {
			wanted--
			b := it.e.Bytes()
			if len(resp.Blocks) == limitN || (len(resp.Blocks) > 0 && size+len(b) > limitB) || len(b) > MaxEntryBlock {
				cont = append(cont, it)
				break
			}
			resp.Blocks = append(resp.Blocks, b)
			size += len(b)
		}
		for _, links := range [][]cid.Cid{it.e.Next, it.e.Refs} {
			for _, c := range links {
				if err := push(c, it.have); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(resp.Blocks) == 0 {
		return resp, nil // nothing to send: no continuation either
	}
	// The continuation: the newest entries to send that were not, each
	// wanted or named by a block sent.
	for q.Len() > 0 && len(cont) < MaxEntriesMore {
		it := heap.Pop(&q).(*walkItem)
		if !it.have {
			cont = append(cont, it)
		}
	}
	for _, it := range cont {
		resp.More = append(resp.More, it.c)
	}
	resp.More = sortHeads(resp.More)
	return resp, nil
}

// checkEntriesResponse checks that resp answers req: same log, within the
// requested limits, every block wanted or named (next or refs) by an
// earlier block, every continuation CID wanted or named by a block. It returns each
// block's CID. An error wraps ErrMalformedMessage: an honest responder
// never sends such a response.
func checkEntriesResponse(req *EntriesRequest, resp *EntriesResponse) ([]cid.Cid, error) {
	if resp.Log != req.Log {
		return nil, fmt.Errorf("%w: response for log %s, asked for %s", ErrMalformedMessage, resp.Log, req.Log)
	}
	if len(resp.Blocks) > req.MaxEntries {
		return nil, fmt.Errorf("%w: %d blocks, asked for at most %d", ErrMalformedMessage, len(resp.Blocks), req.MaxEntries)
	}
	size := 0
	for _, b := range resp.Blocks {
		size += len(b)
	}
	if len(resp.Blocks) > 1 && size > req.MaxBytes {
		return nil, fmt.Errorf("%w: %d block bytes, asked for at most %d", ErrMalformedMessage, size, req.MaxBytes)
	}
	named := make(map[string]struct{}, len(resp.Blocks)*4)
	for _, c := range req.Want {
		named[c.KeyString()] = struct{}{}
	}
	cids := make([]cid.Cid, len(resp.Blocks))
	for i, b := range resp.Blocks {
		c := blockCID(b)
		if _, ok := named[c.KeyString()]; !ok {
			return nil, fmt.Errorf("%w: block %d (%s) is neither wanted nor named by an earlier block", ErrMalformedMessage, i, c)
		}
		e, err := log.DecodeBlock(c, b)
		if err != nil {
			return nil, fmt.Errorf("%w: block %d: %w", ErrMalformedMessage, i, err)
		}
		for _, links := range [][]cid.Cid{e.Next, e.Refs} {
			for _, l := range links {
				named[l.KeyString()] = struct{}{}
			}
		}
		cids[i] = c
	}
	if len(resp.Blocks) == 0 && len(resp.More) > 0 {
		return nil, fmt.Errorf("%w: a continuation without blocks", ErrMalformedMessage)
	}
	for _, c := range resp.More {
		if _, ok := named[c.KeyString()]; !ok {
			return nil, fmt.Errorf("%w: continuation cid %s is neither wanted nor named by a block sent", ErrMalformedMessage, c)
		}
	}
	return cids, nil
}

// bulkFetch is one join's use of the bulk entry fetch from one peer: the
// blocks it received and not yet handed to the join, and the continuation
// it prefetches while the join verifies.
type bulkFetch struct {
	rep  *replica
	peer string
	have []cid.Cid // local heads when the join started

	mu       sync.Mutex
	cache    map[string][]byte // received, not yet handed over
	bytes    int
	from     map[string]bool // every CID received (for blame)
	off      bool            // the peer failed: use the block getter
	inflight chan struct{}   // closed when the running request ends
	wg       sync.WaitGroup  // prefetches
}

// wait waits for the running prefetch (it ends with the join's context).
func (f *bulkFetch) wait() { f.wg.Wait() }

func newBulkFetch(rep *replica, peer string) *bulkFetch {
	return &bulkFetch{rep: rep, peer: peer, have: sortHeads(rep.log.Heads()),
		cache: map[string][]byte{}, from: map[string]bool{}}
}

// take hands over the cached block of c, if any.
func (f *bulkFetch) take(c cid.Cid) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.cache[c.KeyString()]
	if ok {
		delete(f.cache, c.KeyString())
		f.bytes -= len(b)
	}
	return b, ok
}

// received reports whether c came from the peer's bulk responses.
func (f *bulkFetch) received(c cid.Cid) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.from[c.KeyString()]
}

// fetch makes sure a request for want has been answered: it waits for the
// running prefetch, and asks for what is still not cached. It reports
// false when the peer cannot serve (the caller uses the block getter).
func (f *bulkFetch) fetch(ctx context.Context, want []cid.Cid) bool {
	f.mu.Lock()
	wait := f.inflight
	f.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return false
		}
	}
	f.mu.Lock()
	if f.off {
		f.mu.Unlock()
		return false
	}
	var rest []cid.Cid
	for _, c := range want {
		if _, ok := f.cache[c.KeyString()]; !ok && !f.from[c.KeyString()] {
			rest = append(rest, c)
		}
	}
	if len(rest) == 0 {
		f.mu.Unlock()
		return true
	}
	done := make(chan struct{})
	f.inflight = done
	f.mu.Unlock()
	f.request(ctx, rest, done)
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.off
}

// request asks the peer for want and caches the answer; it closes done at
// the end, and prefetches the continuation if there is one and room.
func (f *bulkFetch) request(ctx context.Context, want []cid.Cid, done chan struct{}) {
	r := f.rep.r
	want = sortHeads(want) // at most MaxEntriesWant
	req := &EntriesRequest{Log: f.rep.id, Want: want, Have: f.have,
		MaxEntries: r.opts.bulkEntries, MaxBytes: r.opts.bulkBytes}
	more, err := f.do(ctx, req)
	f.mu.Lock()
	if err != nil && ctx.Err() == nil {
		f.off = true // not for a prefetch the end of a join round cancelled
	}
	f.inflight = nil
	prefetch := len(more) > 0 && !f.off && f.bytes < maxBulkCache*r.opts.bulkBytes
	var next chan struct{}
	if prefetch {
		next = make(chan struct{})
		f.inflight = next
	}
	f.mu.Unlock()
	close(done)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Debug("bulk entry fetch failed; fetching blocks one by one", "log", f.rep.id, "peer", f.peer, "err", err)
		}
		return
	}
	if prefetch {
		// Bounded by the join: ctx ends with it, and join waits for this.
		f.wg.Go(func() { f.request(ctx, more, next) })
	}
}

// do runs one request and caches the blocks; it returns the continuation.
func (f *bulkFetch) do(ctx context.Context, req *EntriesRequest) ([]cid.Cid, error) {
	r := f.rep.r
	if r.isBlocked(f.peer) {
		return nil, ErrBlockedPeer
	}
	data, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, r.opts.requestTimeout)
	defer cancel()
	raw, err := r.direct.Request(rctx, f.peer, EntriesProtocol, data)
	if err != nil {
		if ctx.Err() == nil {
			r.noBulk(f.peer)
		}
		return nil, fmt.Errorf("request entries from %q: %w", f.peer, err)
	}
	resp, err := DecodeEntriesResponse(raw)
	var cids []cid.Cid
	if err == nil {
		cids, err = checkEntriesResponse(req, resp)
	}
	if err != nil {
		// A direct response: the peer wrote it.
		r.cutOff(f.peer, "entries response: "+err.Error())
		return nil, fmt.Errorf("entries from %q: %w", f.peer, err)
	}
	f.mu.Lock()
	for i, b := range resp.Blocks {
		k := cids[i].KeyString()
		if f.from[k] {
			continue
		}
		f.from[k] = true
		f.cache[k] = b
		f.bytes += len(b)
	}
	f.mu.Unlock()
	f.rep.mu.Lock()
	f.rep.bulkRequests++
	f.rep.bulkReceived += uint64(len(resp.Blocks))
	f.rep.mu.Unlock()
	return resp.More, nil
}

// noBulk remembers that peer could not serve a bulk fetch.
func (r *Replicator) noBulk(peer string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bulkOff) >= 4096 {
		clear(r.bulkOff)
	}
	r.bulkOff[peer] = time.Now().Add(r.opts.bulkRetry)
}

// canBulk reports whether peer may be asked for a bulk fetch.
func (r *Replicator) canBulk(peer string) bool {
	if r.direct == nil || r.opts.bulkEntries == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	until, ok := r.bulkOff[peer]
	if ok && time.Now().After(until) {
		delete(r.bulkOff, peer)
		return true
	}
	return !ok
}
