// Package memstore is an in-memory store plugin ("store.memory") for tests
// and experiments: the same sdk.Store semantics as the pebble store (ordered
// keys, atomic batches, snapshot prefix queries, copies in and out) with
// nothing on disk. Sync is a no-op; data lives as long as the Store value.
//
// Usage:
//
//	st := memstore.New() // usable at once; Start is optional
//	err := st.Put(ctx, []byte("k"), []byte("v"))
//
// Stop makes further operations fail with ErrClosed; Start opens the store
// again with its data kept.
package memstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/RaduBerinde/btreemap"

	"github.com/skein-p2p/skein/sdk"
)

// ID is the plugin ID of the in-memory store.
const ID = "store.memory"

// Version is the plugin's own version, reported by Describe.
const Version = "0.1.0"

// ErrClosed is returned by operations on a stopped store. It matches
// sdk.ErrLifecycle.
var ErrClosed = fmt.Errorf("store closed: %w", sdk.ErrLifecycle)

// ErrEmptyKey is returned for an empty key: every key has at least one
// byte. It matches sdk.ErrInvalidArgument.
var ErrEmptyKey = fmt.Errorf("empty key: %w", sdk.ErrInvalidArgument)

// errNegativeLimit is returned by Query for a negative Limit.
var errNegativeLimit = fmt.Errorf("negative limit: %w", sdk.ErrInvalidArgument)

// Compile-time guards.
var (
	_ sdk.Plugin         = (*Store)(nil)
	_ sdk.Store          = (*Store)(nil)
	_ sdk.StatusReporter = (*Store)(nil)
)

// Store is an in-memory sdk.Store and sdk.Plugin. Safe for concurrent use.
type Store struct {
	mu     sync.RWMutex
	closed bool
	// pairs holds every pair as one string (see pack), in key order, in
	// a B-tree: one allocation and 16 bytes of tree item a pair, where a
	// map beside a sorted key slice took two allocations and ~60 bytes (a
	// simulation runs a thousand stores in one process), and an insert
	// costs O(log n), not a shift of the key slice. A pair is never
	// mutated, only replaced, so a query may hold on to it.
	pairs *btreemap.BTreeMap[string, struct{}]
}

// degree of the B-tree: nodes of 15 to 31 pairs.
const degree = 16

// noFreeList keeps no spare nodes: a store's memory follows its pairs.
var noFreeList = btreemap.NewFreeList[string, struct{}](0)

// New returns an empty store, open and ready for use.
func New() *Store {
	return &Store{pairs: btreemap.NewWithFreeList[string, struct{}](degree, comparePacked, noFreeList)}
}

// pack returns a pair as one string: key || value || len(key) as 4 bytes
// big-endian. A probe for key alone is pack(key, nil).
func pack(key string, value []byte) string {
	b := make([]byte, 0, len(key)+len(value)+4)
	b = append(append(b, key...), value...)
	return string(binary.BigEndian.AppendUint32(b, uint32(len(key))))
}

// unpack splits a packed pair.
func unpack(p string) (key, value string) {
	l := len(p)
	n := int(p[l-4])<<24 | int(p[l-3])<<16 | int(p[l-2])<<8 | int(p[l-1])
	return p[:n], p[n : l-4]
}

func comparePacked(a, b string) int {
	ka, _ := unpack(a)
	kb, _ := unpack(b)
	return strings.Compare(ka, kb)
}

// Describe reports the plugin's ID, kinds, version and capabilities. The
// in-memory store has no config keys.
func (s *Store) Describe(ctx context.Context) (sdk.Description, error) {
	return sdk.Description{
		ID:           ID,
		Kinds:        []sdk.Kind{sdk.KindStore},
		Version:      Version,
		Capabilities: []string{"store.atomic-batch", "store.ordered-query"},
		ConfigSchema: []sdk.ConfigKey{},
	}, nil
}

// Configure accepts an empty subtree; every key is unknown and reported as
// an error diagnostic naming it.
func (s *Store) Configure(ctx context.Context, config map[string]any) ([]sdk.Diagnostic, error) {
	keys := make([]string, 0, len(config))
	for k := range config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var diags []sdk.Diagnostic
	for _, k := range keys {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: k,
			Message: fmt.Sprintf("unknown key %q: %s takes no configuration", k, ID)})
	}
	return diags, nil
}

// Start (re)opens the store; its data is kept across Stop and Start.
func (s *Store) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = false
	return nil
}

// Stop closes the store to further operations. Idempotent.
func (s *Store) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Status reports whether the store is open and how many keys it holds.
func (s *Store) Status(ctx context.Context) (sdk.Status, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return sdk.Status{Healthy: false, Message: "closed"}, nil
	}
	return sdk.Status{Healthy: true, Message: "open",
		Details: map[string]string{"keys": strconv.Itoa(s.pairs.Len())}}, nil
}

func check(ctx context.Context, key []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	return nil
}

// Get returns a copy of the value stored under key, or sdk.ErrNotFound.
func (s *Store) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := check(ctx, key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("get: %w", ErrClosed)
	}
	p, _, ok := s.pairs.Get(pack(string(key), nil))
	if !ok {
		return nil, sdk.ErrNotFound
	}
	_, v := unpack(p)
	return []byte(v), nil
}

// Has reports whether key is present.
func (s *Store) Has(ctx context.Context, key []byte) (bool, error) {
	if err := check(ctx, key); err != nil {
		return false, fmt.Errorf("has: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false, fmt.Errorf("has: %w", ErrClosed)
	}
	return s.pairs.Has(pack(string(key), nil)), nil
}

// Put stores a copy of value under key.
func (s *Store) Put(ctx context.Context, key, value []byte) error {
	if err := check(ctx, key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("put: %w", ErrClosed)
	}
	s.set(string(key), value)
	return nil
}

// Delete removes key; deleting an absent key is not an error.
func (s *Store) Delete(ctx context.Context, key []byte) error {
	if err := check(ctx, key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("delete: %w", ErrClosed)
	}
	s.del(string(key))
	return nil
}

// Batch applies ops atomically and in order; sync has no effect in memory.
func (s *Store) Batch(ctx context.Context, ops []sdk.Op, sync bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	for i, op := range ops {
		if len(op.Key) == 0 {
			return fmt.Errorf("batch: op %d: %w", i, ErrEmptyKey)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("batch: %w", ErrClosed)
	}
	for _, op := range ops {
		if op.Delete {
			s.del(string(op.Key))
		} else {
			s.set(string(op.Key), op.Value)
		}
	}
	return nil
}

// Sync is a no-op that fails on a stopped store.
func (s *Store) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("sync: %w", ErrClosed)
	}
	return nil
}

// Query streams the pairs whose key starts with q.Prefix in key order, from
// a snapshot taken when iteration begins. Keys and values are copies.
func (s *Store) Query(ctx context.Context, q sdk.Query) iter.Seq2[sdk.KeyValue, error] {
	return func(yield func(sdk.KeyValue, error) bool) {
		if q.Limit < 0 {
			yield(sdk.KeyValue{}, fmt.Errorf("query: %w %d", errNegativeLimit, q.Limit))
			return
		}
		if err := ctx.Err(); err != nil {
			yield(sdk.KeyValue{}, fmt.Errorf("query: %w", err))
			return
		}
		type pair struct {
			key string
			val string
		}
		s.mu.RLock()
		if s.closed {
			s.mu.RUnlock()
			yield(sdk.KeyValue{}, fmt.Errorf("query: %w", ErrClosed))
			return
		}
		prefix := string(q.Prefix)
		var snap []pair
		for p := range s.pairs.Ascend(btreemap.GE(pack(prefix, nil)), btreemap.Max[string]()) {
			k, v := unpack(p)
			if !strings.HasPrefix(k, prefix) {
				break
			}
			if q.Limit > 0 && len(snap) >= q.Limit {
				break
			}
			snap = append(snap, pair{key: k, val: v})
		}
		s.mu.RUnlock()

		for _, p := range snap {
			if err := ctx.Err(); err != nil {
				yield(sdk.KeyValue{}, fmt.Errorf("query: %w", err))
				return
			}
			kv := sdk.KeyValue{Key: []byte(p.key)}
			if !q.KeysOnly {
				kv.Value = make([]byte, len(p.val))
				copy(kv.Value, p.val)
			}
			if !yield(kv, nil) {
				return
			}
		}
	}
}

// set stores a copy of value under key. Caller holds s.mu for writing.
func (s *Store) set(key string, value []byte) {
	s.pairs.ReplaceOrInsert(pack(key, value), struct{}{})
}

// del removes key. Caller holds s.mu for writing.
func (s *Store) del(key string) {
	s.pairs.Delete(pack(key, nil))
}
