package log

import (
	"context"
	"fmt"
	"iter"
	"slices"

	"github.com/ipfs/go-cid"
)

// Entries iterates over the log in total order (time, writer key, binary
// CID), ascending, or descending with Reverse, over the range the options
// select. It iterates over the entries present when it is called (a
// snapshot of the index); each entry is read from the BlockStore as the
// iteration reaches it. An error ends the iteration.
func (l *Log) Entries(ctx context.Context, opts ...IterOption) iter.Seq2[*Entry, error] {
	return func(yield func(*Entry, error) bool) {
		for c, err := range l.CIDs(ctx, opts...) {
			if err != nil {
				yield(nil, err)
				return
			}
			e, err := l.load(ctx, c)
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// CIDs is Entries without reading the entries: it yields their CIDs, from
// the index in memory (no block read; with the network out of process, no
// cross-process call per entry). A caller that needs a few of the entries
// (those a group has not delivered) Gets those alone.
func (l *Log) CIDs(ctx context.Context, opts ...IterOption) iter.Seq2[cid.Cid, error] {
	o := iterOptions{untilPos: -1}
	for _, opt := range opts {
		opt(&o)
	}
	return func(yield func(cid.Cid, error) bool) {
		// Look the bounds up first, then snapshot the index: a commit
		// updates the KV and the index under one lock, so the snapshot
		// holds every key found.
		var sinceKey, untilKey orderKey
		var err error
		if o.since.Defined() {
			if sinceKey, err = l.lookup(ctx, o.since); err != nil {
				yield(cid.Undef, fmt.Errorf("iterate log %q since %s: %w", l.id, o.since, err))
				return
			}
		}
		if o.until.Defined() {
			if untilKey, err = l.lookup(ctx, o.until); err != nil {
				yield(cid.Undef, fmt.Errorf("iterate log %q until %s: %w", l.id, o.until, err))
				return
			}
		}
		l.mu.RLock()
		idx := l.index[:len(l.index):len(l.index)]
		l.mu.RUnlock()
		lo, hi := 0, len(idx)
		if o.since.Defined() {
			i, _ := slices.BinarySearchFunc(idx, sinceKey, compareOrderKeys)
			lo = i + 1
		}
		if o.until.Defined() {
			hi, _ = slices.BinarySearchFunc(idx, untilKey, compareOrderKeys)
		}
		lo = max(lo, o.sincePos)
		if o.untilPos >= 0 {
			hi = min(hi, o.untilPos)
		}
		hi = min(hi, len(idx))
		if lo >= hi {
			return
		}
		positions := func(yield func(int) bool) {
			for i := lo; i < hi; i++ {
				if !yield(i) {
					return
				}
			}
		}
		if o.reverse {
			positions = func(yield func(int) bool) {
				for i := hi - 1; i >= lo; i-- {
					if !yield(i) {
						return
					}
				}
			}
		}
		n := 0
		for i := range positions {
			if o.limit > 0 && n >= o.limit {
				return
			}
			if err := ctx.Err(); err != nil {
				yield(cid.Undef, fmt.Errorf("iterate log %q: %w", l.id, err))
				return
			}
			if !yield(idx[i].cid(), nil) {
				return
			}
			n++
		}
	}
}
