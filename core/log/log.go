package log

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/ipfs/go-cid"
)

// orderKey is an entry's position key in the total order: time (8 bytes,
// big-endian), writer key (32 bytes), binary CID (36 bytes). Comparing two
// keys bytewise compares entries in the total order.
type orderKey [8 + 32 + cidLen]byte

func makeOrderKey(e *Entry) orderKey {
	var k orderKey
	binary.BigEndian.PutUint64(k[:8], e.Time)
	copy(k[8:40], e.Writer)
	copy(k[40:], e.cid.KeyString())
	return k
}

func (k *orderKey) time() uint64 { return binary.BigEndian.Uint64(k[:8]) }

func (k *orderKey) cid() cid.Cid {
	c, err := cid.Cast(k[40:])
	if err != nil {
		// Index keys are written by this package from valid CIDs only.
		panic(fmt.Sprintf("log index holds an invalid cid: %v", err))
	}
	return c
}

// KV key tags, after the optional prefix.
const (
	tagMeta  = 'm' // -> log id
	tagCount = 'n' // -> number of entries (8 bytes)
	tagHead  = 'h' // + cid -> time (8 bytes)
	tagCIDix = 'c' // + cid -> order key
	tagOrder = 'o' // + order key -> empty
)

type head struct {
	cid  cid.Cid
	time uint64
}

// Log is one replica of a Merkle log. It is safe for concurrent use.
type Log struct {
	id     string
	blocks BlockStore
	kv     KV
	signer Signer
	access AccessController
	opts   options
	logger *slog.Logger

	mu     sync.RWMutex // guards the fields below; held for writing by Append and Join's commit
	closed bool
	heads  []head     // sorted by binary CID
	index  []orderKey // every entry, in total order; only appended to or replaced
	subs   map[*subscription]struct{}
	// writer is the signer's public key; scratch is Append's buffer for
	// signing bytes (both used under mu).
	writer  ed25519.PublicKey
	scratch []byte

	verified verifiedSigs // entries whose signature verified lately (joins)
}

// Open opens (or creates) the log id in kv, with entry blocks in blocks.
// signer may be nil for a replica that only joins (Append then returns
// ErrReadOnly); access must not be nil. Open reads the heads and the ordered
// index from kv, never the entry blocks.
func Open(ctx context.Context, id string, blocks BlockStore, kv KV, signer Signer, access AccessController, opts ...Option) (*Log, error) {
	if len(id) == 0 || len(id) > MaxIDLength {
		return nil, fmt.Errorf("open log: id has %d bytes, want 1..%d", len(id), MaxIDLength)
	}
	if blocks == nil || kv == nil || access == nil {
		return nil, fmt.Errorf("open log %q: block store, kv and access controller are required", id)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("open log %q: %w", id, err)
		}
	}
	l := &Log{id: id, blocks: blocks, kv: kv, signer: signer, access: access, opts: o,
		logger: o.logger.With("log", id), subs: map[*subscription]struct{}{}}
	if signer != nil {
		l.writer = slices.Clone(signer.PublicKey())
		if len(l.writer) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("open log %q: signer public key has %d bytes, want %d", id, len(l.writer), ed25519.PublicKeySize)
		}
	}

	stored, err := kv.Get(ctx, l.key(tagMeta))
	switch {
	case errors.Is(err, ErrNotFound):
		if err := kv.Put(ctx, l.key(tagMeta), []byte(id)); err != nil {
			return nil, fmt.Errorf("open log %q: write meta: %w", id, err)
		}
	case err != nil:
		return nil, fmt.Errorf("open log %q: read meta: %w", id, err)
	case string(stored) != id:
		return nil, fmt.Errorf("open log %q: %w: the kv holds log %q", id, ErrWrongLog, stored)
	}

	for kvp, err := range kv.Query(ctx, KVQuery{Prefix: l.key(tagHead)}) {
		if err != nil {
			return nil, fmt.Errorf("open log %q: read heads: %w", id, err)
		}
		raw := kvp.Key[len(l.opts.keyPrefix)+1:]
		c, cerr := cid.Cast(raw)
		if cerr != nil || len(raw) != cidLen || len(kvp.Value) != 8 {
			return nil, fmt.Errorf("open log %q: corrupt head record %x", id, kvp.Key)
		}
		l.heads = append(l.heads, head{cid: c, time: binary.BigEndian.Uint64(kvp.Value)})
	}
	slices.SortFunc(l.heads, func(a, b head) int { return compareCID(a.cid, b.cid) })

	count, err := kv.Get(ctx, l.key(tagCount))
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("open log %q: read count: %w", id, err)
	case len(count) != 8:
		return nil, fmt.Errorf("open log %q: corrupt count record", id)
	default:
		l.index = make([]orderKey, 0, binary.BigEndian.Uint64(count))
	}
	pl := len(l.opts.keyPrefix) + 1
	for kvp, err := range kv.Query(ctx, KVQuery{Prefix: l.key(tagOrder), KeysOnly: true}) {
		if err != nil {
			return nil, fmt.Errorf("open log %q: read index: %w", id, err)
		}
		if len(kvp.Key) != pl+len(orderKey{}) {
			return nil, fmt.Errorf("open log %q: corrupt index record %x", id, kvp.Key)
		}
		l.index = append(l.index, orderKey(kvp.Key[pl:]))
	}
	if !slices.IsSortedFunc(l.index, compareOrderKeys) {
		return nil, fmt.Errorf("open log %q: kv query returned the index out of order", id)
	}
	if count != nil && uint64(len(l.index)) != binary.BigEndian.Uint64(count) {
		return nil, fmt.Errorf("open log %q: index holds %d entries, count record says %d", id, len(l.index), binary.BigEndian.Uint64(count))
	}
	return l, nil
}

func compareOrderKeys(a, b orderKey) int { return bytes.Compare(a[:], b[:]) }

func compareCID(a, b cid.Cid) int {
	as, bs := a.KeyString(), b.KeyString()
	switch {
	case as < bs:
		return -1
	case as > bs:
		return 1
	}
	return 0
}

// key returns prefix | tag | parts.
func (l *Log) key(tag byte, parts ...[]byte) []byte {
	n := len(l.opts.keyPrefix) + 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	k = append(append(k, l.opts.keyPrefix...), tag)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func (l *Log) cidKey(tag byte, c cid.Cid) []byte {
	k := make([]byte, 0, len(l.opts.keyPrefix)+1+cidLen)
	k = append(append(k, l.opts.keyPrefix...), tag)
	return append(k, c.KeyString()...)
}

// ID returns the log id.
func (l *Log) ID() string { return l.id }

// Heads returns the current heads (entries no other entry names in next),
// sorted by binary CID.
func (l *Log) Heads() []cid.Cid {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]cid.Cid, len(l.heads))
	for i, h := range l.heads {
		out[i] = h.cid
	}
	return out
}

// Len returns the number of entries in the log.
func (l *Log) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.index)
}

// Has reports whether entry c is in the log.
func (l *Log) Has(ctx context.Context, c cid.Cid) (bool, error) {
	ok, err := l.kv.Has(ctx, l.cidKey(tagCIDix, c))
	if err != nil {
		return false, fmt.Errorf("log %q: has %s: %w", l.id, c, err)
	}
	return ok, nil
}

// lookup returns the order key of entry c, or an error wrapping ErrNotFound.
func (l *Log) lookup(ctx context.Context, c cid.Cid) (orderKey, error) {
	v, err := l.kv.Get(ctx, l.cidKey(tagCIDix, c))
	if err != nil {
		return orderKey{}, err
	}
	if len(v) != len(orderKey{}) {
		return orderKey{}, fmt.Errorf("corrupt index record for %s", c)
	}
	return orderKey(v), nil
}

// Position returns the position of entry c in the total order (0 is the
// first entry), or an error wrapping ErrNotFound.
func (l *Log) Position(ctx context.Context, c cid.Cid) (int, error) {
	k, err := l.lookup(ctx, c)
	if err != nil {
		return 0, fmt.Errorf("log %q: position of %s: %w", l.id, c, err)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	i, found := slices.BinarySearchFunc(l.index, k, compareOrderKeys)
	if !found {
		return 0, fmt.Errorf("log %q: position of %s: %w (index out of step)", l.id, c, ErrNotFound)
	}
	return i, nil
}

// Get returns entry c if it is in the log, or an error wrapping ErrNotFound.
func (l *Log) Get(ctx context.Context, c cid.Cid) (*Entry, error) {
	ok, err := l.Has(ctx, c)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("log %q: get %s: %w", l.id, c, ErrNotFound)
	}
	return l.load(ctx, c)
}

// load reads and decodes a stored entry block.
func (l *Log) load(ctx context.Context, c cid.Cid) (*Entry, error) {
	data, err := l.blocks.Get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("log %q: read block %s: %w", l.id, c, err)
	}
	e, err := DecodeBlock(c, data)
	if err != nil {
		return nil, fmt.Errorf("log %q: %w", l.id, err)
	}
	return e, nil
}

// Append signs a new entry holding payload, with the current heads as next,
// and adds it to the log. The payload is copied.
func (l *Log) Append(ctx context.Context, payload []byte) (*Entry, error) {
	return l.AppendWith(ctx, payload, nil)
}

// AppendWith is Append with extra key-value writes committed in the same
// KV batch as the new entry's index, and synced with it: they are durable
// exactly when the entry is (one sync instead of two). extra receives the
// signed entry (its CID and time known) before anything is written; it
// runs under the log's lock and must not call the log. An error from it
// aborts the append.
func (l *Log) AppendWith(ctx context.Context, payload []byte, extra func(*Entry) ([]KVOp, error)) (*Entry, error) {
	if l.signer == nil {
		return nil, fmt.Errorf("append to log %q: %w", l.id, ErrReadOnly)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("append to log %q: %w", l.id, ErrClosed)
	}

	// Next: the heads, or the maxNext newest of them; the time exceeds all.
	next := l.heads
	if len(next) > l.opts.maxNext {
		next = slices.Clone(next)
		slices.SortFunc(next, func(a, b head) int {
			if a.time != b.time {
				if a.time > b.time {
					return -1
				}
				return 1
			}
			return compareCID(a.cid, b.cid)
		})
		next = next[:l.opts.maxNext]
		slices.SortFunc(next, func(a, b head) int { return compareCID(a.cid, b.cid) })
	}
	// Payload is encoded from the caller's slice, then re-pointed into the
	// entry's own bytes by sealEntryBuf.
	e := &Entry{ID: l.id, Payload: payload, Next: make([]cid.Cid, len(next)), Time: 1}
	for i, h := range next {
		e.Next[i] = h.cid
		e.Time = max(e.Time, h.time+1)
	}
	// Refs: the entries 2, 4, 8, ... places back in the total order.
	for d := 2; len(e.Refs) < l.opts.appendRefs && d <= len(l.index); d *= 2 {
		c := l.index[len(l.index)-d].cid()
		if !slices.ContainsFunc(e.Next, func(n cid.Cid) bool { return n.Equals(c) }) {
			e.Refs = append(e.Refs, c)
		}
	}
	slices.SortFunc(e.Refs, compareCID)

	if err := sealEntryBuf(e, l.signer, l.writer, &l.scratch); err != nil {
		return nil, fmt.Errorf("append to log %q: %w", l.id, err)
	}
	if len(e.raw) > l.opts.maxEntrySize {
		return nil, fmt.Errorf("append to log %q: %w: %d bytes, limit %d", l.id, ErrTooLarge, len(e.raw), l.opts.maxEntrySize)
	}
	if err := l.access.CanWrite(ctx, e); err != nil {
		return nil, fmt.Errorf("append to log %q: %w: %w", l.id, ErrNotAllowed, err)
	}
	var more []KVOp
	if extra != nil {
		var err error
		if more, err = extra(e); err != nil {
			return nil, fmt.Errorf("append to log %q: %w", l.id, err)
		}
	}
	if err := l.blocks.Put(ctx, e.cid, e.raw); err != nil {
		return nil, fmt.Errorf("append to log %q: put block: %w", l.id, err)
	}
	if err := l.commit(ctx, []*Entry{e}, more); err != nil {
		return nil, fmt.Errorf("append to log %q: %w", l.id, err)
	}
	return e, nil
}

// commit persists entries (sorted in total order, all new, every next
// either in the log or among entries) as one KV batch, with extra writes if
// any (the batch is then synced whatever the log's option), then updates
// the in-memory heads and index and notifies subscribers. l.mu is held.
func (l *Log) commit(ctx context.Context, entries []*Entry, extra []KVOp) error {
	keys := make([]orderKey, len(entries))
	referenced := make(map[string]struct{}, len(entries))
	ops := make([]KVOp, 0, 2*len(entries)+len(l.heads)+1)
	for i, e := range entries {
		keys[i] = makeOrderKey(e)
		ops = append(ops,
			KVOp{Key: l.cidKey(tagCIDix, e.cid), Value: keys[i][:]},
			KVOp{Key: l.key(tagOrder, keys[i][:]), Value: []byte{}})
		for _, n := range e.Next {
			referenced[n.KeyString()] = struct{}{}
		}
	}
	var heads []head
	for _, h := range l.heads {
		if _, ok := referenced[h.cid.KeyString()]; ok {
			ops = append(ops, KVOp{Key: l.cidKey(tagHead, h.cid), Delete: true})
		} else {
			heads = append(heads, h)
		}
	}
	for _, e := range entries {
		if _, ok := referenced[e.cid.KeyString()]; ok {
			continue
		}
		heads = append(heads, head{cid: e.cid, time: e.Time})
		ops = append(ops, KVOp{Key: l.cidKey(tagHead, e.cid), Value: binary.BigEndian.AppendUint64(nil, e.Time)})
	}
	ops = append(ops, KVOp{Key: l.key(tagCount), Value: binary.BigEndian.AppendUint64(nil, uint64(len(l.index)+len(entries)))})
	ops = append(ops, extra...)
	if err := l.kv.Batch(ctx, ops, l.opts.syncWrites || len(extra) > 0); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	slices.SortFunc(heads, func(a, b head) int { return compareCID(a.cid, b.cid) })
	l.heads = heads
	if len(l.index) == 0 || compareOrderKeys(l.index[len(l.index)-1], keys[0]) < 0 {
		l.index = append(l.index, keys...)
	} else {
		merged := make([]orderKey, 0, len(l.index)+len(keys))
		i, j := 0, 0
		for i < len(l.index) && j < len(keys) {
			if compareOrderKeys(l.index[i], keys[j]) < 0 {
				merged = append(merged, l.index[i])
				i++
			} else {
				merged = append(merged, keys[j])
				j++
			}
		}
		merged = append(append(merged, l.index[i:]...), keys[j:]...)
		l.index = merged
	}
	l.notify(entries)
	return nil
}

// Close stops the subscriptions; later Append and Join return ErrClosed.
// Close does not close the BlockStore or KV.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	for s := range l.subs {
		s.Stop()
	}
	clear(l.subs)
	return nil
}
