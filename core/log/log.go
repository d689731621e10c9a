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
	"sync/atomic"

	"github.com/ipfs/go-cid"
)

// orderKey is an entry's position key in the total order: time (8 bytes,
// big-endian), tie-break (32 bytes: the writer key unless the log has
// another Order, order.go), binary CID (36 bytes). Comparing two keys
// bytewise compares entries in the total order.
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
	// tagBlock + cid -> the entry's block: written with the entry's index,
	// kept until the BlockStore holds the block (see place).
	tagBlock = 'b'
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

	wmu sync.Mutex // held by the one writer of staged writes (flush)
	// flushing counts the writes of joins not waited for (WithoutSync).
	flushing sync.WaitGroup
	mu       sync.RWMutex // guards the fields below; held for writing by Append and Join's commit
	closed   bool
	heads    []head     // sorted by binary CID
	index    []orderKey // every entry, in total order; only appended to or replaced
	// known maps every entry's binary CID to its time: what the index
	// says, without a KV read per CID (a store out of process makes each
	// one a cross-process call, and a join asks about every link).
	known map[[cidLen]byte]uint64
	// queue holds the staged writes not yet taken by a writer (group
	// commit, see flush); unsynced the entries staged and not yet in the
	// BlockStore (written to the KV only, or not yet written), readable
	// from memory meanwhile.
	queue    []*pendingWrite
	written  []head // the heads as last written (heads: as staged)
	unsynced map[string]*Entry
	// toPlace: entries written (their blocks in the KV) whose blocks the
	// placer has yet to put into the BlockStore; placed: the KV copies of
	// blocks the BlockStore now holds, deleted with the next write.
	toPlace []*Entry
	placed  [][]byte
	placer  placer
	subs    map[*subscription]struct{}
	// writer is the signer's public key; scratch is Append's buffer for
	// signing bytes (both used under mu).
	writer  ed25519.PublicKey
	scratch []byte

	// A large log's index is read after Open returns (loadIndex, holding
	// mu): meanwhile Heads and Len answer from openHeads and openLen, the
	// state Open read, which nothing can change before it is loaded.
	loading   atomic.Bool
	openHeads []cid.Cid
	openLen   int
	loadErr   error // set (with closed) if the index could not be read
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
		logger: o.logger.With("log", id), subs: map[*subscription]struct{}{}, unsynced: map[string]*Entry{}}
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
	l.written = l.heads

	count, err := kv.Get(ctx, l.key(tagCount))
	switch {
	case errors.Is(err, ErrNotFound):
		count = nil
	case err != nil:
		return nil, fmt.Errorf("open log %q: read count: %w", id, err)
	case len(count) != 8:
		return nil, fmt.Errorf("open log %q: corrupt count record", id)
	}
	if count != nil && binary.BigEndian.Uint64(count) >= uint64(o.lazyIndexMin) {
		// A large log: the heads and the count are what opening needs;
		// the index is read in the background, holding l.mu, so every
		// method that needs it waits for it (Heads and Len answer from
		// what Open read meanwhile: nothing can change before).
		l.openLen = int(binary.BigEndian.Uint64(count))
		l.openHeads = make([]cid.Cid, len(l.heads))
		for i, h := range l.heads {
			l.openHeads[i] = h.cid
		}
		if err := l.checkOrder(ctx); err != nil {
			return nil, fmt.Errorf("open log %q: %w", id, err)
		}
		l.mu.Lock()
		l.loading.Store(true)
		go func() {
			defer l.mu.Unlock()
			err := l.loadIndex(context.Background(), count)
			l.loading.Store(false)
			if err != nil {
				// Fail closed: writes return the error, reads find
				// nothing.
				l.loadErr = fmt.Errorf("open log %q: %w", id, err)
				l.closed = true
				l.index, l.known = nil, map[[cidLen]byte]uint64{}
				l.logger.Error("read log index", "err", err)
				return
			}
			l.placer.start(l)
		}()
		return l, nil
	}
	if err := l.loadIndex(ctx, count); err != nil {
		return nil, fmt.Errorf("open log %q: %w", id, err)
	}
	if err := l.checkOrder(ctx); err != nil {
		return nil, fmt.Errorf("open log %q: %w", id, err)
	}
	l.placer.start(l)
	return l, nil
}

// loadIndex reads the ordered index (count entries, if count is not nil)
// and the block records of entries not yet placed; l.mu is held or the
// log is not shared yet.
func (l *Log) loadIndex(ctx context.Context, count []byte) error {
	kv := l.kv
	if count != nil {
		l.index = make([]orderKey, 0, binary.BigEndian.Uint64(count))
	}
	pl := len(l.opts.keyPrefix) + 1
	for kvp, err := range kv.Query(ctx, KVQuery{Prefix: l.key(tagOrder), KeysOnly: true}) {
		if err != nil {
			return fmt.Errorf("read index: %w", err)
		}
		if len(kvp.Key) != pl+len(orderKey{}) {
			return fmt.Errorf("corrupt index record %x", kvp.Key)
		}
		l.index = append(l.index, orderKey(kvp.Key[pl:]))
	}
	if !slices.IsSortedFunc(l.index, compareOrderKeys) {
		return errors.New("kv query returned the index out of order")
	}
	if count != nil && uint64(len(l.index)) != binary.BigEndian.Uint64(count) {
		return fmt.Errorf("index holds %d entries, count record says %d", len(l.index), binary.BigEndian.Uint64(count))
	}
	l.known = make(map[[cidLen]byte]uint64, len(l.index))
	for i := range l.index {
		l.known[[cidLen]byte(l.index[i][40:])] = l.index[i].time()
	}
	// Blocks written to the KV that the BlockStore may not hold (the
	// process stopped before they were placed): placed again.
	for kvp, err := range kv.Query(ctx, KVQuery{Prefix: l.key(tagBlock)}) {
		if err != nil {
			return fmt.Errorf("read unplaced blocks: %w", err)
		}
		c, cerr := cid.Cast(kvp.Key[pl:])
		if cerr != nil {
			return fmt.Errorf("corrupt block record %x", kvp.Key)
		}
		if _, ok := l.timeOf(c); !ok {
			// Not in the index: a block record is written with the
			// index, so this one is left over; drop it.
			l.placed = append(l.placed, slices.Clone(kvp.Key))
			continue
		}
		e, derr := DecodeBlock(c, slices.Clone(kvp.Value))
		if derr != nil {
			return fmt.Errorf("block record %s: %w", c, derr)
		}
		l.unsynced[c.KeyString()] = e
		l.toPlace = append(l.toPlace, e)
	}
	return nil
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
// sorted by binary CID: those written, so that a peer told of them can
// fetch them (an append being written is not named until it is).
func (l *Log) Heads() []cid.Cid {
	if l.loading.Load() {
		return slices.Clone(l.openHeads)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]cid.Cid, len(l.written))
	for i, h := range l.written {
		out[i] = h.cid
	}
	return out
}

// Len returns the number of entries in the log.
func (l *Log) Len() int {
	if l.loading.Load() {
		return l.openLen
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.index)
}

// Has reports whether entry c is in the log.
func (l *Log) Has(_ context.Context, c cid.Cid) (bool, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.timeOf(c)
	return ok, nil
}

// timeOf returns the time of entry c if it is in the log; l.mu is held
// (read or write).
func (l *Log) timeOf(c cid.Cid) (uint64, bool) {
	k := c.KeyString()
	if len(k) != cidLen {
		return 0, false
	}
	var key [cidLen]byte
	copy(key[:], k)
	t, ok := l.known[key]
	return t, ok
}

// lookup returns the order key of entry c, or an error wrapping ErrNotFound.
func (l *Log) lookup(_ context.Context, c cid.Cid) (orderKey, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i, ok := l.position(c)
	if !ok {
		return orderKey{}, fmt.Errorf("entry %s: %w", c, ErrNotFound)
	}
	return l.index[i], nil
}

// position returns the index of entry c in l.index; l.mu is held.
func (l *Log) position(c cid.Cid) (int, bool) {
	t, ok := l.timeOf(c)
	if !ok {
		return 0, false
	}
	// The entries of time t are few: find c among them.
	i, _ := slices.BinarySearchFunc(l.index, t, func(k orderKey, t uint64) int {
		switch kt := k.time(); {
		case kt < t:
			return -1
		case kt > t:
			return 1
		}
		return 0
	})
	key := c.KeyString()
	for ; i < len(l.index) && l.index[i].time() == t; i++ {
		if string(l.index[i][40:]) == key {
			return i, true
		}
	}
	return 0, false
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

// GetRun returns entry c and at most n of the entries just before it in
// the total order, read together (one BlockGetter.GetMany), newest first:
// a walk down the log from c (a bulk entry request's responder) reads
// them next, and one batched read replaces as many single ones (each a
// cross-process call when the network runs out of process). An entry
// whose block cannot be read is left out of the run, except c: c not in
// the log is an error wrapping ErrNotFound.
func (l *Log) GetRun(ctx context.Context, c cid.Cid, n int) ([]*Entry, error) {
	l.mu.RLock()
	i, ok := l.position(c)
	var all, run []cid.Cid // the run; those of it to read
	got := map[string]*Entry{}
	if ok {
		lo := max(0, i-max(n, 0))
		all = make([]cid.Cid, 0, i+1-lo)
		for j := i; j >= lo; j-- {
			rc := l.index[j].cid()
			all = append(all, rc)
			if e := l.unsynced[rc.KeyString()]; e != nil {
				got[rc.KeyString()] = e
				continue
			}
			run = append(run, rc)
		}
	}
	l.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("log %q: get %s: %w", l.id, c, ErrNotFound)
	}
	for b, err := range l.blocks.GetMany(ctx, run) {
		if !b.CID.Defined() {
			if err == nil {
				err = errors.New("block getter yielded a result without a cid")
			}
			return nil, fmt.Errorf("log %q: read blocks: %w", l.id, err)
		}
		if err != nil {
			if b.CID.Equals(c) {
				return nil, fmt.Errorf("log %q: read block %s: %w", l.id, c, err)
			}
			continue
		}
		e, err := DecodeBlock(b.CID, b.Data)
		if err != nil {
			return nil, fmt.Errorf("log %q: %w", l.id, err)
		}
		got[b.CID.KeyString()] = e
	}
	out := make([]*Entry, 0, len(got))
	for _, rc := range all {
		if e := got[rc.KeyString()]; e != nil {
			out = append(out, e)
		}
	}
	if len(out) == 0 || !out[0].cid.Equals(c) {
		return nil, fmt.Errorf("log %q: read block %s: %w: the block store did not return it", l.id, c, ErrNotFound)
	}
	return out, nil
}

// load reads and decodes a stored entry block.
func (l *Log) load(ctx context.Context, c cid.Cid) (*Entry, error) {
	l.mu.RLock()
	e := l.unsynced[c.KeyString()]
	l.mu.RUnlock()
	if e != nil {
		return e, nil // staged, not yet durable
	}
	data, err := l.blocks.Get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("log %q: read block %s: %w", l.id, c, err)
	}
	e, err = DecodeBlock(c, data)
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
	e, p, err := l.BeginAppend(ctx, payload, extra)
	if err != nil {
		return nil, err
	}
	if err := p.Wait(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Pending is an append on its way to storage (BeginAppend).
type Pending struct {
	l *Log
	w *pendingWrite
}

// Wait returns once the append is durable (as durable as the log's writes
// are: synced with WithSyncWrites or extra writes), or has failed. Appends
// and joins waiting at the same time share one block write and one KV
// batch (a group commit). ctx is not used to abandon the write: an append
// begun is written.
func (p *Pending) Wait(ctx context.Context) error {
	if err := p.l.flush(ctx, p.w); err != nil {
		return fmt.Errorf("append to log %q: %w", p.l.id, err)
	}
	return nil
}

// BeginAppend is AppendWith in two steps: it signs the new entry and adds
// it to the log in memory (a later append builds on it; reads of the log
// see it), then returns; Wait on the returned Pending returns once it is
// written. Subscribers see the entry once it is written. A caller holding
// its own lock over the append (core/group) releases it before Wait, so
// that concurrent appends share one write.
func (l *Log) BeginAppend(ctx context.Context, payload []byte, extra func(*Entry) ([]KVOp, error)) (*Entry, *Pending, error) {
	if l.signer == nil {
		return nil, nil, fmt.Errorf("append to log %q: %w", l.id, ErrReadOnly)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, fmt.Errorf("append to log %q: %w", l.id, l.closedErr())
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
	// Refs: on every k-th entry, the entries k, 2k, 4k, ... places back in
	// the total order (with k = 1: 2, 4, 8, ..., the first being in next).
	k := l.opts.refsEvery
	for d := k; len(l.index)%k == 0 && len(e.Refs) < l.opts.appendRefs && d <= len(l.index); d *= 2 {
		c := l.index[len(l.index)-d].cid()
		if !slices.ContainsFunc(e.Next, func(n cid.Cid) bool { return n.Equals(c) }) {
			e.Refs = append(e.Refs, c)
		}
	}
	slices.SortFunc(e.Refs, compareCID)

	if err := sealEntryBuf(e, l.signer, l.writer, &l.scratch); err != nil {
		return nil, nil, fmt.Errorf("append to log %q: %w", l.id, err)
	}
	if len(e.raw) > l.opts.maxEntrySize {
		return nil, nil, fmt.Errorf("append to log %q: %w: %d bytes, limit %d", l.id, ErrTooLarge, len(e.raw), l.opts.maxEntrySize)
	}
	if err := l.access.CanWrite(ctx, e); err != nil {
		return nil, nil, fmt.Errorf("append to log %q: %w: %w", l.id, ErrNotAllowed, err)
	}
	var more []KVOp
	if extra != nil {
		var err error
		if more, err = extra(e); err != nil {
			return nil, nil, fmt.Errorf("append to log %q: %w", l.id, err)
		}
	}
	return e, &Pending{l: l, w: l.stage([]*Entry{e}, more)}, nil
}

// pendingWrite is what one append or join adds, staged: its blocks and KV
// writes, written by whichever waiter takes the queue first (flush).
type pendingWrite struct {
	entries []*Entry
	ops     []KVOp
	heads   []head // the log's heads once it is written
	sync    bool
	done    chan struct{} // closed once written (or failed)
	err     error         // set before done is closed
}

// stage adds entries (sorted in total order, all new, every next either in
// the log or among entries) to the log in memory, and queues their blocks
// and their index as one write, with extra writes if any (the write is then
// synced whatever the log's option). Subscribers are told once it is
// written. l.mu is held.
func (l *Log) stage(entries []*Entry, extra []KVOp) *pendingWrite {
	keys := make([]orderKey, len(entries))
	referenced := make(map[string]struct{}, len(entries))
	ops := make([]KVOp, 0, 2*len(entries)+len(l.heads)+1+len(extra))
	for i, e := range entries {
		keys[i] = l.orderKeyOf(e)
		ops = append(ops,
			KVOp{Key: l.cidKey(tagCIDix, e.cid), Value: keys[i][:]},
			KVOp{Key: l.key(tagOrder, keys[i][:]), Value: []byte{}})
		for _, n := range e.Next {
			referenced[n.KeyString()] = struct{}{}
		}
	}
	heads := make([]head, 0, len(l.heads)+len(entries))
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

	slices.SortFunc(heads, func(a, b head) int { return compareCID(a.cid, b.cid) })
	l.heads = heads
	for i, e := range entries {
		l.known[[cidLen]byte(keys[i][40:])] = e.Time
		l.unsynced[e.cid.KeyString()] = e
	}
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
	w := &pendingWrite{entries: entries, ops: ops, heads: heads,
		sync: l.opts.syncWrites || len(extra) > 0, done: make(chan struct{})}
	l.queue = append(l.queue, w)
	return w
}

// flush returns once w is written. The first waiter to get the write lock
// writes every staged write queued so far, in the order staged, as one
// block write and one KV batch (synced if any of them asks), and tells
// subscribers; the waiters that queued meanwhile find theirs done, or
// write the next group together. A failed write is undone in memory, with
// every append and join staged after it (ErrWriteFailed for those).
func (l *Log) flush(ctx context.Context, w *pendingWrite) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	select {
	case <-w.done:
		return w.err
	default:
	}
	l.mu.Lock()
	batch := l.queue
	l.queue = nil
	placed := l.placed
	l.placed = nil
	l.mu.Unlock()
	// Sized up front: a group commit gathers many appends.
	nEntries, nOps := 0, len(placed)
	for _, b := range batch {
		nEntries += len(b.entries)
		nOps += len(b.ops)
	}
	if l.opts.placeLater {
		nOps += nEntries
	}
	entries := make([]*Entry, 0, nEntries)
	ops := make([]KVOp, 0, nOps)
	sync := false
	for _, b := range batch {
		entries = append(entries, b.entries...)
		ops = append(ops, b.ops...)
		sync = sync || b.sync
	}
	// The blocks go into the same KV batch as their index: one synced
	// write makes an entry durable, block and all. The BlockStore gets
	// them afterwards (place), off the writer's path.
	// Not abandoned with the caller's context: others wait on this write.
	wctx := context.WithoutCancel(ctx)
	var err error
	if l.opts.placeLater {
		var blockOps []KVOp
		blockOps, err = l.blockOps(wctx, entries)
		ops = append(ops, blockOps...)
	} else {
		err = l.putBlocks(wctx, entries)
	}
	for _, k := range placed {
		ops = append(ops, KVOp{Key: k, Delete: true})
	}
	if err == nil {
		if err = l.kv.Batch(wctx, ops, sync); err != nil {
			err = fmt.Errorf("write index: %w", err)
		}
	}
	l.mu.Lock()
	if err != nil {
		l.placed = append(placed, l.placed...)
		// Undo it in memory, and everything staged since (built on it):
		// what was not written is not in the log.
		later := l.queue
		l.queue = nil
		l.rollback(append(slices.Clone(batch), later...))
		for _, b := range later {
			b.err = fmt.Errorf("%w: %w", ErrWriteFailed, err)
			close(b.done)
		}
	} else {
		for _, b := range batch {
			l.notify(b.entries)
			l.written = b.heads
		}
		if l.opts.placeLater {
			l.toPlace = append(l.toPlace, entries...)
			l.placer.wake()
		} else {
			for _, e := range entries {
				delete(l.unsynced, e.cid.KeyString())
			}
			l.shrinkUnsynced()
		}
	}
	l.mu.Unlock()
	for _, b := range batch {
		b.err = err
		close(b.done)
	}
	return w.err
}

// blockChunk bounds the unsynced batches a large write puts its blocks in.
const blockChunk = 1 << 20

// blockOps returns the KV records of entries' blocks for the index batch.
// A write with more than blockChunk bytes of blocks (a join catching up)
// writes them first, in unsynced batches of about blockChunk, and returns
// only the rest: one batch of many MiB costs the store (and a store out of
// process, the message carrying it) a copy of it all at once. The index
// batch is synced last, so a crash before it leaves blocks without an
// index, which Open drops (the entries are fetched again); an entry is in
// the log only with its block. Deleting a block record is in the index
// batch too (placed), so no record this writes is deleted before it.
func (l *Log) blockOps(ctx context.Context, entries []*Entry) ([]KVOp, error) {
	total := 0
	for _, e := range entries {
		total += len(e.raw)
	}
	ops := make([]KVOp, 0, len(entries))
	if total <= blockChunk {
		for _, e := range entries {
			ops = append(ops, KVOp{Key: l.cidKey(tagBlock, e.cid), Value: e.raw})
		}
		return ops, nil
	}
	size := 0
	for _, e := range entries {
		ops = append(ops, KVOp{Key: l.cidKey(tagBlock, e.cid), Value: e.raw})
		size += len(e.raw)
		if size >= blockChunk {
			if err := l.kv.Batch(ctx, ops, false); err != nil {
				return nil, fmt.Errorf("write blocks: %w", err)
			}
			ops, size = nil, 0
		}
	}
	return ops, nil
}

// rollback removes from memory the entries of staged writes that were not
// written; the heads go back to those last written. l.mu is held.
func (l *Log) rollback(ws []*pendingWrite) {
	drop := map[[cidLen]byte]bool{}
	for _, w := range ws {
		for _, e := range w.entries {
			var k [cidLen]byte
			copy(k[:], e.cid.KeyString())
			drop[k] = true
			delete(l.known, k)
			delete(l.unsynced, e.cid.KeyString())
		}
	}
	l.index = slices.DeleteFunc(slices.Clone(l.index), func(k orderKey) bool { return drop[[cidLen]byte(k[40:])] })
	l.heads = l.written
}

// closedErr is ErrClosed, with why the index could not be read if that
// closed the log; l.mu is held.
func (l *Log) closedErr() error {
	if l.loadErr != nil {
		return fmt.Errorf("%w: %w", ErrClosed, l.loadErr)
	}
	return ErrClosed
}

// Close stops the subscriptions; later Append and Join return ErrClosed.
// Close does not close the BlockStore or KV.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for s := range l.subs {
		s.Stop()
	}
	clear(l.subs)
	l.mu.Unlock()
	l.flushing.Wait()
	// Appends and joins in flush when Close was called finish writing
	// (those of joins not waited for too);
	// then the placer puts what is left into the BlockStore once more
	// (what it cannot is placed again at the next Open).
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.placer.stop()
	l.mu.Lock()
	placed := l.placed
	l.placed = nil
	l.mu.Unlock()
	if len(placed) > 0 {
		ops := make([]KVOp, len(placed))
		for i, k := range placed {
			ops[i] = KVOp{Key: k, Delete: true}
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := l.kv.Batch(ctx, ops, false); err != nil {
			l.logger.Debug("delete block records of placed blocks", "err", err)
		}
	}
	return nil
}

// shrinkUnsynced drops the unsynced map's buckets once it is empty: a Go
// map never shrinks, and a catch-up or a burst of joins would leave each
// log holding the buckets of its peak (in a simulation of a thousand
// members, 49 MB). l.mu is held.
func (l *Log) shrinkUnsynced() {
	if len(l.unsynced) == 0 {
		l.unsynced = map[string]*Entry{}
	}
}
