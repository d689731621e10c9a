// Package intern is a bounded table that lets many copies of the same
// immutable value in one process share one (decoded entries, parsed
// certificates in a simulation of many nodes). Two generations of at most
// size/2 each: when the newer fills, the older is dropped.
package intern

import (
	"sync"
	"sync/atomic"
)

// Table maps keys to shared values; its zero value is off (size 0).
type Table[K comparable, V any] struct {
	size     atomic.Int64
	mu       sync.Mutex
	cur, old map[K]V
}

// SetSize sets how many values the table keeps (0 turns it off) and
// empties it.
func (t *Table[K, V]) SetSize(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.size.Store(int64(max(n, 0)))
	t.cur, t.old = nil, nil
}

// Size returns the size SetSize set.
func (t *Table[K, V]) Size() int { return int(t.size.Load()) }

// Get returns the value kept for k, newer generation first.
func (t *Table[K, V]) Get(k K) (V, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.cur[k]
	if !ok {
		v, ok = t.old[k]
	}
	return v, ok
}

// Add keeps v for k and returns it, unless the newer generation already
// holds a value for k that same accepts (same nil: any), which it returns
// instead. With the table off it returns v.
func (t *Table[K, V]) Add(k K, v V, same func(V) bool) V {
	size := t.Size()
	if size == 0 {
		return v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if got, ok := t.cur[k]; ok && (same == nil || same(got)) {
		return got // added meanwhile
	}
	if t.cur == nil {
		t.cur = make(map[K]V)
	}
	if len(t.cur) >= max(size/2, 1) {
		t.old, t.cur = t.cur, make(map[K]V)
	}
	t.cur[k] = v
	return v
}
