package sim

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"iter"
	"slices"
	"sync"

	"github.com/skein-p2p/skein/sdk"
)

// groupKeyPrefix is how a group's keys begin in a node's store:
// "group/" + the group's id in hex (64 characters) + "/" (core/group).
const (
	groupKeyHead   = "group/"
	groupKeyPrefix = len(groupKeyHead) + 64 + 1
)

// shortMark starts an abbreviated key: no key a node writes starts with
// it (they are text).
const shortMark = 0x00

// shortKeys is a node's store with its group keys abbreviated: the 71
// bytes of "group/<hex id>/" become 3 (a mark and the group's number in
// this store), which makes each entry of a log's index in the store about
// 140 bytes smaller. A thousand nodes in one process each hold every
// metadata entry's index; the abbreviation is invisible to the node (keys
// are rewritten back on the way out and prefix queries that span groups
// are merged in key order).
type shortKeys struct {
	sdk.Store
	mu    sync.RWMutex
	ids   map[string]uint16 // hex id -> number
	names []string          // number -> "group/<hex id>/"
}

func newShortKeys(s sdk.Store) *shortKeys {
	return &shortKeys{Store: s, ids: map[string]uint16{}}
}

// short returns key abbreviated (key itself if it is not a group key, or
// if the store holds 65,536 groups already).
func (s *shortKeys) short(key []byte) []byte {
	if len(key) < groupKeyPrefix || !bytes.HasPrefix(key, []byte(groupKeyHead)) || key[groupKeyPrefix-1] != '/' {
		return key
	}
	id := key[len(groupKeyHead) : groupKeyPrefix-1]
	if _, err := hex.Decode(make([]byte, 32), id); err != nil {
		return key
	}
	s.mu.RLock()
	n, ok := s.ids[string(id)]
	s.mu.RUnlock()
	if !ok {
		s.mu.Lock()
		if n, ok = s.ids[string(id)]; !ok {
			if len(s.names) > 0xffff {
				s.mu.Unlock()
				return key
			}
			n = uint16(len(s.names))
			s.ids[string(id)] = n
			s.names = append(s.names, string(key[:groupKeyPrefix]))
		}
		s.mu.Unlock()
	}
	out := make([]byte, 3, 3+len(key)-groupKeyPrefix)
	out[0] = shortMark
	binary.BigEndian.PutUint16(out[1:], n)
	return append(out, key[groupKeyPrefix:]...)
}

// long undoes short.
func (s *shortKeys) long(key []byte) []byte {
	if len(key) < 3 || key[0] != shortMark {
		return key
	}
	n := binary.BigEndian.Uint16(key[1:3])
	s.mu.RLock()
	name := s.names[n]
	s.mu.RUnlock()
	return append([]byte(name), key[3:]...)
}

func (s *shortKeys) Get(ctx context.Context, key []byte) ([]byte, error) {
	return s.Store.Get(ctx, s.short(key))
}

func (s *shortKeys) Put(ctx context.Context, key, value []byte) error {
	return s.Store.Put(ctx, s.short(key), value)
}

func (s *shortKeys) Delete(ctx context.Context, key []byte) error {
	return s.Store.Delete(ctx, s.short(key))
}

func (s *shortKeys) Has(ctx context.Context, key []byte) (bool, error) {
	return s.Store.Has(ctx, s.short(key))
}

func (s *shortKeys) Batch(ctx context.Context, ops []sdk.Op, sync bool) error {
	out := make([]sdk.Op, len(ops))
	for i, op := range ops {
		out[i] = sdk.Op{Key: s.short(op.Key), Value: op.Value, Delete: op.Delete}
	}
	return s.Store.Batch(ctx, out, sync)
}

func (s *shortKeys) Query(ctx context.Context, q sdk.Query) iter.Seq2[sdk.KeyValue, error] {
	spans := len(q.Prefix) < groupKeyPrefix &&
		(bytes.HasPrefix(q.Prefix, []byte(groupKeyHead)) || bytes.HasPrefix([]byte(groupKeyHead), q.Prefix))
	if !spans {
		// Within one group, or not a group key at all: one range.
		q.Prefix = s.short(q.Prefix)
		return func(yield func(sdk.KeyValue, error) bool) {
			for kv, err := range s.Store.Query(ctx, q) {
				if err == nil {
					kv.Key = s.long(kv.Key)
				}
				if !yield(kv, err) {
					return
				}
			}
		}
	}
	// A prefix shorter than a group's ("group/", "gr", ""): the
	// unabbreviated range and every abbreviated group it covers, merged
	// in key order.
	return func(yield func(sdk.KeyValue, error) bool) {
		var all []sdk.KeyValue
		collect := func(q sdk.Query) bool {
			for kv, err := range s.Store.Query(ctx, q) {
				if err != nil {
					yield(kv, err)
					return false
				}
				kv.Key = s.long(kv.Key)
				all = append(all, kv)
			}
			return true
		}
		if !collect(sdk.Query{Prefix: q.Prefix, KeysOnly: q.KeysOnly}) {
			return
		}
		if len(q.Prefix) > 0 { // "" took the abbreviated keys already
			s.mu.RLock()
			names := slices.Clone(s.names)
			s.mu.RUnlock()
			for n, name := range names {
				if bytes.HasPrefix([]byte(name), q.Prefix) &&
					!collect(sdk.Query{Prefix: []byte{shortMark, byte(n >> 8), byte(n)}, KeysOnly: q.KeysOnly}) {
					return
				}
			}
		}
		slices.SortFunc(all, func(a, b sdk.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
		for i, kv := range all {
			if q.Limit > 0 && i >= q.Limit {
				return
			}
			if !yield(kv, nil) {
				return
			}
		}
	}
}
