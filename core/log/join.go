package log

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ipfs/go-cid"
)

// joinNode is one CID a Join looked at that was not in the log.
type joinNode struct {
	c        cid.Cid
	e        *Entry // set once fetched and decoded
	err      error  // rejection reason (fetch, decode, structure, signature, ...)
	fetched  bool
	deferred bool // an ancestor was not fetched (join limit): neither in nor rejected

	// state is queuedMark while fetching; during validation, DFS state for
	// cycle detection: 0 unvisited, 1 on the stack, 2 done.
	state byte
}

type nodeStatus int

const (
	statusPending nodeStatus = iota
	statusAccepted
	statusRejected
	statusDeferred
)

// Join fetches the entries reachable from heads (through next and refs)
// that this replica lacks, verifies each one, and adds those that pass,
// with everything under them, in one atomic commit. from names the peer the
// heads came from; it labels rejections.
//
// An entry enters only if its block hashes to its CID, it is the canonical
// encoding of a well-formed entry of this log, it is within the size limits,
// its signature verifies, its time exceeds every time under next (and by at
// most the clock-jump limit), the AccessController allows its writer, and
// every entry under its next is in the log or enters with it. Entries that
// fail, and entries that depend on them, are listed in JoinResult.Rejected
// and returned as a *JoinError; the others still enter. Joining heads that
// are already in the log is a no-op.
//
// Fetching runs with at most the configured parallelism; signatures are
// verified in parallel while fetching goes on. Join is PrepareJoin then
// Commit.
func (l *Log) Join(ctx context.Context, heads []cid.Cid, from string, opts ...JoinOption) (JoinResult, error) {
	p, err := l.PrepareJoin(ctx, heads, from, opts...)
	if err != nil {
		return JoinResult{}, err
	}
	return p.Commit(ctx)
}

// PreparedJoin is the first half of a Join: the entries reachable from the
// heads that the log lacked, fetched, decoded and with their signatures
// checked, not yet validated against the log nor added. Commit finishes it.
// Preparing takes no lock of the log, so a caller that serialises its
// commits under a lock of its own (a group's processing) need not hold it
// while the network is slow.
type PreparedJoin struct {
	l        *Log
	from     string
	nodes    map[string]*joinNode
	pending  []cid.Cid
	limitHit bool
	done     bool
	noSync   bool
}

// PrepareJoin fetches and checks, as Join does, the entries reachable from
// heads that the log lacks, without adding them; Commit adds them. An error
// means nothing could be prepared (closed log, context ended, index read);
// rejections of single entries are reported by Commit.
func (l *Log) PrepareJoin(ctx context.Context, heads []cid.Cid, from string, opts ...JoinOption) (*PreparedJoin, error) {
	jo := joinOptions{getter: l.blocks}
	for _, opt := range opts {
		opt(&jo)
	}
	if jo.getter == nil {
		return nil, fmt.Errorf("join log %q from peer %q: nil block getter", l.id, from)
	}
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return nil, fmt.Errorf("join log %q from peer %q: %w", l.id, from, ErrClosed)
	}

	p := &PreparedJoin{l: l, from: from, nodes: map[string]*joinNode{}, noSync: jo.noSync}
	nodes := p.nodes
	pendingSet := map[string]struct{}{}
	var fetchedBytes int64
	// want registers c for fetching unless it is known or already registered.
	want := func(c cid.Cid) (*joinNode, error) {
		if n, ok := nodes[c.KeyString()]; ok {
			return n, nil
		}
		if k := c.KeyString(); len(k) != cidLen || k[:4] != string(cidPrefix[:]) {
			// Not a log entry's CID: rejected without asking the getter.
			n := &joinNode{c: c, fetched: true, state: queuedMark,
				err: fmt.Errorf("%w: %q is not a CIDv1 dag-cbor sha2-256 cid", ErrMalformed, c)}
			nodes[k] = n
			return n, nil
		}
		l.mu.RLock()
		_, known := l.timeOf(c)
		l.mu.RUnlock()
		if known {
			return nil, nil
		}
		if len(nodes) >= l.opts.maxJoinEntries || fetchedBytes > l.opts.maxJoinBytes {
			p.limitHit = true
			if _, ok := pendingSet[c.KeyString()]; !ok {
				pendingSet[c.KeyString()] = struct{}{}
				p.pending = append(p.pending, c)
			}
			return nil, nil
		}
		n := &joinNode{c: c}
		nodes[c.KeyString()] = n
		return n, nil
	}

	// Signature verification runs beside fetching.
	verify := make(chan *joinNode, 4*l.opts.verifyParallelism)
	var wg sync.WaitGroup
	for range l.opts.verifyParallelism {
		wg.Go(func() {
			// VerifySignature goes through the process's cache of
			// verified signatures (internal/sigcache): the same entries
			// joined from several peers at once are verified once.
			for n := range verify {
				if jo.verified != nil && jo.verified(n.c) {
					continue
				}
				if err := n.e.VerifySignature(); err != nil {
					n.err = err
				}
			}
		})
	}
	fetchErr := l.fetch(ctx, jo.getter, heads, want, verify, &fetchedBytes)
	close(verify)
	wg.Wait()
	if fetchErr != nil {
		return nil, fmt.Errorf("join log %q from peer %q: %w", l.id, from, fetchErr)
	}
	return p, nil
}

// Entries returns the prepared entries whose block decoded and whose
// signature verified, in no particular order: what Commit may add. A
// caller may decode their payloads before taking the lock under which it
// commits (the access check then finds them decoded).
func (p *PreparedJoin) Entries() []*Entry {
	out := make([]*Entry, 0, len(p.nodes))
	for _, n := range p.nodes {
		if n.e != nil && n.err == nil {
			out = append(out, n.e)
		}
	}
	return out
}

// Commit validates the prepared entries against the log as it is now
// (entries a concurrent Append or Join added meanwhile are skipped) and
// adds those that pass, with everything under them, in one atomic commit.
// Its result and error are Join's. A PreparedJoin commits once.
func (p *PreparedJoin) Commit(ctx context.Context) (JoinResult, error) {
	l, from := p.l, p.from
	l.mu.Lock()
	if p.done {
		l.mu.Unlock()
		return JoinResult{}, fmt.Errorf("join log %q from peer %q: %w", l.id, from, ErrJoinCommitted)
	}
	p.done = true
	if l.closed {
		l.mu.Unlock()
		return JoinResult{}, fmt.Errorf("join log %q from peer %q: %w", l.id, from, l.closedErr())
	}
	accepted, rejected, err := l.validate(ctx, p.nodes, from)
	if err != nil {
		l.mu.Unlock()
		return JoinResult{}, fmt.Errorf("join log %q from peer %q: %w", l.id, from, err)
	}
	var w *pendingWrite
	if len(accepted) > 0 {
		w = l.stage(accepted, nil)
		w.sync = w.sync && !p.noSync
		if p.noSync {
			l.flushing.Add(1) // under l.mu, before Close can wait
		}
	}
	l.mu.Unlock()
	if w != nil && p.noSync {
		// Not waited for: the caller goes on with the entries staged
		// (in the log, readable) while they are written.
		go func() {
			defer l.flushing.Done()
			if err := l.flush(context.WithoutCancel(ctx), w); err != nil {
				l.logger.Warn("write joined entries; undone (they are fetched again)", "from", from, "err", err)
			}
		}()
	} else if w != nil {
		// Written with the appends and joins staged meanwhile.
		if err := l.flush(ctx, w); err != nil {
			return JoinResult{}, fmt.Errorf("join log %q from peer %q: %w", l.id, from, err)
		}
	}
	pending := slices.Clone(p.pending)
	slices.SortFunc(pending, compareCID)
	res := JoinResult{Added: accepted, Rejected: rejected, Pending: pending}
	if len(rejected) == 0 && !p.limitHit {
		return res, nil
	}
	je := &JoinError{Log: l.id, From: from, Rejections: rejected}
	if p.limitHit {
		je.Limit = fmt.Errorf("%w: more than %d new entries or %d bytes", ErrJoinLimit, l.opts.maxJoinEntries, l.opts.maxJoinBytes)
	}
	l.logger.Warn("log join rejected entries", "from", from, "added", len(accepted),
		"rejected", len(rejected), "limit", p.limitHit)
	return res, je
}

// fetch walks next and refs breadth-first from heads, fetching each level in
// chunks of at most the join parallelism, decoding and checking structure,
// and handing decoded entries to verify. It returns an error only when the
// whole join must stop (context, index read).
func (l *Log) fetch(ctx context.Context, g BlockGetter, heads []cid.Cid,
	want func(cid.Cid) (*joinNode, error), verify chan<- *joinNode, fetchedBytes *int64) error {
	var level []*joinNode
	for _, c := range heads {
		n, err := want(c)
		if err != nil {
			return err
		}
		if n != nil && !n.queued() {
			n.state = queuedMark
			level = append(level, n)
		}
	}
	byCID := map[string]*joinNode{}
	for len(level) > 0 {
		var nextLevel []*joinNode
		for start := 0; start < len(level); start += l.opts.joinParallelism {
			part := level[start:min(start+l.opts.joinParallelism, len(level))]
			// A fresh slice per call: the getter may hold on to it.
			chunk := make([]cid.Cid, 0, len(part))
			clear(byCID)
			for _, n := range part {
				chunk = append(chunk, n.c)
				byCID[n.c.KeyString()] = n
			}
			for b, err := range g.GetMany(ctx, chunk) {
				if !b.CID.Defined() {
					if err == nil {
						err = errors.New("block getter yielded a result without a cid")
					}
					return fmt.Errorf("fetch blocks: %w", err)
				}
				n := byCID[b.CID.KeyString()]
				if n == nil || n.fetched {
					continue // not asked for, or answered twice: ignore
				}
				n.fetched = true
				if err != nil {
					n.err = fmt.Errorf("%w: %w", ErrMissingBlock, err)
					continue
				}
				*fetchedBytes += int64(len(b.Data))
				if !l.decodeNode(n, b.Data) {
					continue
				}
				verify <- n
				for _, links := range [][]cid.Cid{n.e.Next, n.e.Refs} {
					for _, c := range links {
						m, err := want(c)
						if err != nil {
							return err
						}
						if m != nil && !m.fetched && !m.queued() {
							m.state = queuedMark
							nextLevel = append(nextLevel, m)
						}
					}
				}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			for _, n := range part {
				if !n.fetched {
					n.fetched = true
					n.err = fmt.Errorf("%w: the block getter did not return it", ErrMissingBlock)
				}
			}
		}
		level = nextLevel
	}
	return nil
}

// queuedMark marks a node already put on a fetch level; validate resets it.
const queuedMark = 3

func (n *joinNode) queued() bool { return n.state == queuedMark }

// decodeNode decodes and checks the structure of a fetched block; on
// failure it sets n.err and returns false.
func (l *Log) decodeNode(n *joinNode, data []byte) bool {
	if len(data) > l.opts.maxEntrySize {
		n.err = fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), l.opts.maxEntrySize)
		return false
	}
	e, err := DecodeBlock(n.c, data)
	switch {
	case err != nil:
		n.err = err
	case e.ID != l.id:
		n.err = fmt.Errorf("%w: entry of log %q", ErrWrongLog, e.ID)
	case len(e.Next) > l.opts.maxNext:
		n.err = fmt.Errorf("%w: %d next links, limit %d", ErrTooLarge, len(e.Next), l.opts.maxNext)
	case len(e.Refs) > l.opts.maxRefs:
		n.err = fmt.Errorf("%w: %d refs, limit %d", ErrTooLarge, len(e.Refs), l.opts.maxRefs)
	default:
		n.e = e
		return true
	}
	return false
}

// validate decides every fetched node in causal order (ancestors first) and
// returns the accepted entries in total order and the rejections in CID
// order. l.mu is held.
func (l *Log) validate(ctx context.Context, nodes map[string]*joinNode, from string) ([]*Entry, []Rejection, error) {
	status := make(map[*joinNode]nodeStatus, len(nodes))
	// Deterministic DFS roots: by (time, cid) for decoded nodes.
	roots := make([]*joinNode, 0, len(nodes))
	for _, n := range nodes {
		n.state = 0
		if n.e != nil && n.err == nil {
			roots = append(roots, n)
		} else {
			status[n] = statusRejected
			if !n.fetched {
				status[n] = statusDeferred
			}
		}
	}
	slices.SortFunc(roots, func(a, b *joinNode) int {
		if a.e.Time != b.e.Time {
			if a.e.Time < b.e.Time {
				return -1
			}
			return 1
		}
		return compareCID(a.c, b.c)
	})

	// Iterative DFS over next edges among candidates: post-order is causal.
	order := make([]*joinNode, 0, len(roots))
	type frame struct {
		n *joinNode
		i int
	}
	var stack []frame
	for _, r := range roots {
		if r.state != 0 {
			continue
		}
		r.state = 1
		stack = append(stack[:0], frame{n: r})
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.i < len(f.n.e.Next) {
				m := nodes[f.n.e.Next[f.i].KeyString()]
				f.i++
				if m == nil || m.e == nil || m.err != nil {
					continue
				}
				switch m.state {
				case 0:
					m.state = 1
					stack = append(stack, frame{n: m})
				case 1:
					// Back edge: m is its own ancestor. Unreachable with
					// sha2-256 links, checked anyway.
					f.n.err = fmt.Errorf("%w: via %s", ErrCycle, m.c)
				}
				continue
			}
			f.n.state = 2
			order = append(order, f.n)
			stack = stack[:len(stack)-1]
		}
	}

	var accepted []*Entry
	for _, n := range order {
		if n.err != nil {
			status[n] = statusRejected
			continue
		}
		st, err := l.check(ctx, n, nodes, status)
		if err != nil {
			return nil, nil, err
		}
		status[n] = st
		if st == statusAccepted {
			accepted = append(accepted, n.e)
		}
	}

	var rejected []Rejection
	for n, st := range status {
		if st == statusRejected {
			rejected = append(rejected, Rejection{CID: n.c, From: from, Err: n.err})
		}
	}
	slices.SortFunc(rejected, func(a, b Rejection) int { return compareCID(a.CID, b.CID) })
	slices.SortFunc(accepted, func(a, b *Entry) int {
		ka, kb := l.orderKeyOf(a), l.orderKeyOf(b)
		return compareOrderKeys(ka, kb)
	})
	return accepted, rejected, nil
}

// check decides one node whose next candidates are already decided. It
// sets n.err on rejection. A non-nil error aborts the join.
func (l *Log) check(ctx context.Context, n *joinNode, nodes map[string]*joinNode, status map[*joinNode]nodeStatus) (nodeStatus, error) {
	e := n.e
	// A concurrent Append or Join may have added it meanwhile.
	if _, ok := l.timeOf(n.c); ok {
		return statusPending, nil // neither added nor rejected
	}
	var maxTime uint64
	for _, c := range e.Next {
		var t uint64
		if m := nodes[c.KeyString()]; m != nil {
			switch status[m] {
			case statusAccepted:
				t = m.e.Time
			case statusRejected:
				n.err = fmt.Errorf("%w: next %s", ErrBadAncestor, c)
				return statusRejected, nil
			case statusDeferred:
				n.deferred = true
				return statusDeferred, nil
			default:
				// Known since fetching (concurrent commit), or a cycle member.
				kt, ok := l.timeOf(c)
				if !ok {
					n.err = fmt.Errorf("%w: next %s undecided", ErrBadAncestor, c)
					return statusRejected, nil
				}
				t = kt
			}
		} else {
			kt, ok := l.timeOf(c)
			if !ok {
				// Not fetched because of the join limit.
				n.deferred = true
				return statusDeferred, nil
			}
			t = kt
		}
		if t >= e.Time {
			n.err = fmt.Errorf("%w: time %d does not exceed next %s's time %d", ErrClock, e.Time, c, t)
			return statusRejected, nil
		}
		maxTime = max(maxTime, t)
	}
	if e.Time == 0 || e.Time-maxTime > l.opts.maxClockJump {
		n.err = fmt.Errorf("%w: time %d jumps past %d by more than %d", ErrClock, e.Time, maxTime, l.opts.maxClockJump)
		return statusRejected, nil
	}
	if err := l.access.CanWrite(ctx, e); err != nil {
		n.err = fmt.Errorf("%w: %w", ErrNotAllowed, err)
		return statusRejected, nil
	}
	return statusAccepted, nil
}

// putBlocks stores the blocks of entries: in one call when the block store
// can (BlockPutter), else one Put each.
func (l *Log) putBlocks(ctx context.Context, entries []*Entry) error {
	if bp, ok := l.blocks.(BlockPutter); ok && len(entries) > 1 {
		blocks := make([]Block, len(entries))
		for i, e := range entries {
			blocks[i] = Block{CID: e.cid, Data: e.raw}
		}
		if err := bp.PutMany(ctx, blocks); err != nil {
			return fmt.Errorf("put %d blocks: %w", len(blocks), err)
		}
		return nil
	}
	for _, e := range entries {
		if err := l.blocks.Put(ctx, e.cid, e.raw); err != nil {
			return fmt.Errorf("put block: %w", err)
		}
	}
	return nil
}
