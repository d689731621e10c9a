package log

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"

	"github.com/ipfs/go-cid"
)

// MemBlockStore is an in-memory BlockStore, for tests and ephemeral logs.
// It stores copies of what is Put; the bytes Get returns must not be
// modified.
type MemBlockStore struct {
	mu     sync.RWMutex
	blocks map[string][]byte
}

var _ BlockStore = (*MemBlockStore)(nil)

// NewMemBlockStore returns an empty in-memory block store.
func NewMemBlockStore() *MemBlockStore { return &MemBlockStore{blocks: map[string][]byte{}} }

// Get implements BlockStore.
func (s *MemBlockStore) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.blocks[c.KeyString()]
	if !ok {
		return nil, fmt.Errorf("block %s: %w", c, ErrNotFound)
	}
	return b, nil
}

// Put implements BlockStore.
func (s *MemBlockStore) Put(_ context.Context, c cid.Cid, data []byte) error {
	if !c.Defined() {
		return fmt.Errorf("put block: undefined cid")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blocks[c.KeyString()]; !ok {
		s.blocks[c.KeyString()] = bytes.Clone(data)
	}
	return nil
}

// Has implements BlockStore.
func (s *MemBlockStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.blocks[c.KeyString()]
	return ok, nil
}

// GetMany implements BlockGetter; it answers from memory, in request order.
func (s *MemBlockStore) GetMany(ctx context.Context, cids []cid.Cid) iter.Seq2[Block, error] {
	return func(yield func(Block, error) bool) {
		for _, c := range cids {
			if err := ctx.Err(); err != nil {
				yield(Block{}, err)
				return
			}
			data, err := s.Get(ctx, c)
			if !yield(Block{CID: c, Data: data}, err) {
				return
			}
		}
	}
}

// Len returns the number of blocks stored.
func (s *MemBlockStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.blocks)
}

// MemKV is an in-memory KV with ordered prefix queries, for tests and
// ephemeral logs.
type MemKV struct {
	mu      sync.Mutex
	values  map[string][]byte
	sorted  []string // sorted keys; may hold deleted keys until the next query
	pending []string // keys added since the last sort
	deleted bool     // sorted holds deleted keys
}

var _ KV = (*MemKV)(nil)

// NewMemKV returns an empty in-memory KV.
func NewMemKV() *MemKV { return &MemKV{values: map[string][]byte{}} }

// Get implements KV.
func (m *MemKV) Get(_ context.Context, key []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.values[string(key)]
	if !ok {
		return nil, fmt.Errorf("key %q: %w", key, ErrNotFound)
	}
	return bytes.Clone(v), nil
}

// Has implements KV.
func (m *MemKV) Has(_ context.Context, key []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.values[string(key)]
	return ok, nil
}

// Put implements KV.
func (m *MemKV) Put(_ context.Context, key, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(key, value)
	return nil
}

// Delete implements KV; deleting an absent key is not an error.
func (m *MemKV) Delete(_ context.Context, key []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delete(key)
	return nil
}

func (m *MemKV) put(key, value []byte) {
	k := string(key)
	if _, ok := m.values[k]; !ok {
		m.pending = append(m.pending, k)
	}
	m.values[k] = bytes.Clone(value)
}

func (m *MemKV) delete(key []byte) {
	if _, ok := m.values[string(key)]; ok {
		delete(m.values, string(key))
		m.deleted = true
	}
}

// Batch implements KV: all ops apply at once under one lock.
func (m *MemKV) Batch(_ context.Context, ops []KVOp, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, op := range ops {
		if op.Delete {
			m.delete(op.Key)
		} else {
			m.put(op.Key, op.Value)
		}
	}
	return nil
}

// order folds pending keys into sorted and drops deleted ones; m.mu is held.
func (m *MemKV) order() {
	if len(m.pending) == 0 && !m.deleted {
		return
	}
	live := func(k string) bool { _, ok := m.values[k]; return ok }
	slices.Sort(m.pending)
	m.pending = slices.Compact(m.pending)
	merged := make([]string, 0, len(m.sorted)+len(m.pending))
	i, j := 0, 0
	for i < len(m.sorted) || j < len(m.pending) {
		var k string
		switch {
		case j == len(m.pending) || (i < len(m.sorted) && m.sorted[i] < m.pending[j]):
			k = m.sorted[i]
			i++
		case i == len(m.sorted) || m.pending[j] < m.sorted[i]:
			k = m.pending[j]
			j++
		default: // equal: re-added after a delete
			k = m.sorted[i]
			i++
			j++
		}
		if live(k) {
			merged = append(merged, k)
		}
	}
	m.sorted, m.pending, m.deleted = merged, nil, false
}

// Query implements KV. It yields a snapshot taken when iteration starts.
func (m *MemKV) Query(ctx context.Context, q KVQuery) iter.Seq2[KVPair, error] {
	return func(yield func(KVPair, error) bool) {
		m.mu.Lock()
		m.order()
		p := string(q.Prefix)
		start, _ := slices.BinarySearch(m.sorted, p)
		end := start
		for end < len(m.sorted) && strings.HasPrefix(m.sorted[end], p) && (q.Limit <= 0 || end-start < q.Limit) {
			end++
		}
		// order() replaces m.sorted rather than changing it, so this
		// subslice is a stable snapshot of the keys.
		keys := m.sorted[start:end]
		var values [][]byte
		if !q.KeysOnly {
			values = make([][]byte, len(keys))
			for i, k := range keys {
				values[i] = bytes.Clone(m.values[k])
			}
		}
		m.mu.Unlock()
		// Copy keys into shared chunks: one allocation per 64 KiB, not per key.
		var buf []byte
		for i, k := range keys {
			if err := ctx.Err(); err != nil {
				yield(KVPair{}, err)
				return
			}
			if cap(buf)-len(buf) < len(k) {
				buf = make([]byte, 0, max(64<<10, len(k)))
			}
			buf = append(buf, k...)
			kv := KVPair{Key: buf[len(buf)-len(k) : len(buf) : len(buf)]}
			if values != nil {
				kv.Value = values[i]
			}
			if !yield(kv, nil) {
				return
			}
		}
	}
}
