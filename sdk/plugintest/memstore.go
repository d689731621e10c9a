package plugintest

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/skein-p2p/skein/sdk"
)

// MemStore is an in-memory reference sdk.Store (and sdk.Plugin, ID
// "store.memory") for tests. Keys are ordered bytewise; the empty key is
// rejected with sdk.ErrInvalidArgument. It keeps nothing across restarts.
type MemStore struct {
	mu   sync.RWMutex
	data map[string][]byte
}

var (
	_ sdk.Store  = (*MemStore)(nil)
	_ sdk.Plugin = (*MemStore)(nil)
)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{data: map[string][]byte{}} }

// Describe says it is the store.memory plugin.
func (s *MemStore) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: "store.memory", Kinds: []sdk.Kind{sdk.KindStore}, Version: "1.0.0"}, nil
}

// Configure accepts only an empty config.
func (s *MemStore) Configure(_ context.Context, cfg map[string]any) ([]sdk.Diagnostic, error) {
	var diags []sdk.Diagnostic
	for k := range cfg {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: k, Message: "unknown key"})
	}
	return diags, nil
}

// Start does nothing.
func (s *MemStore) Start(context.Context) error { return nil }

// Stop does nothing.
func (s *MemStore) Stop(context.Context) error { return nil }

func checkKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("empty key: %w", sdk.ErrInvalidArgument)
	}
	return nil
}

// Get returns a copy of the value or sdk.ErrNotFound.
func (s *MemStore) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.data[string(key)]
	if !ok {
		return nil, fmt.Errorf("get %q: %w", key, sdk.ErrNotFound)
	}
	return bytes.Clone(v), nil
}

// Put stores a copy of value.
func (s *MemStore) Put(ctx context.Context, key, value []byte) error {
	return s.Batch(ctx, []sdk.Op{{Key: key, Value: value}}, false)
}

// Delete removes key; deleting an absent key is not an error.
func (s *MemStore) Delete(ctx context.Context, key []byte) error {
	return s.Batch(ctx, []sdk.Op{{Key: key, Delete: true}}, false)
}

// Has reports whether key exists.
func (s *MemStore) Has(ctx context.Context, key []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.data[string(key)]
	return ok, nil
}

// Batch applies ops atomically: all or (on a bad key) none.
func (s *MemStore) Batch(ctx context.Context, ops []sdk.Op, _ bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, op := range ops {
		if err := checkKey(op.Key); err != nil {
			return fmt.Errorf("batch op %d: %w", i, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		if op.Delete {
			delete(s.data, string(op.Key))
			continue
		}
		v := op.Value
		if v == nil {
			v = []byte{}
		}
		s.data[string(op.Key)] = bytes.Clone(v)
	}
	return nil
}

// Query streams a consistent snapshot of the matching pairs in key order.
func (s *MemStore) Query(ctx context.Context, q sdk.Query) iter.Seq2[sdk.KeyValue, error] {
	return func(yield func(sdk.KeyValue, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(sdk.KeyValue{}, err)
			return
		}
		if q.Limit < 0 {
			yield(sdk.KeyValue{}, fmt.Errorf("query limit %d: %w", q.Limit, sdk.ErrInvalidArgument))
			return
		}
		s.mu.RLock()
		var snap []sdk.KeyValue
		for k, v := range s.data {
			if bytes.HasPrefix([]byte(k), q.Prefix) {
				kv := sdk.KeyValue{Key: []byte(k)}
				if !q.KeysOnly {
					kv.Value = bytes.Clone(v)
				}
				snap = append(snap, kv)
			}
		}
		s.mu.RUnlock()
		slices.SortFunc(snap, func(a, b sdk.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
		if q.Limit > 0 && len(snap) > q.Limit {
			snap = snap[:q.Limit]
		}
		for _, kv := range snap {
			if err := ctx.Err(); err != nil {
				yield(sdk.KeyValue{}, err)
				return
			}
			if !yield(kv, nil) {
				return
			}
		}
	}
}

// Sync does nothing: nothing is durable.
func (s *MemStore) Sync(ctx context.Context) error { return ctx.Err() }
