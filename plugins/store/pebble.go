package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/skein-p2p/skein/sdk"
)

// ID is the plugin ID of the pebble store.
const ID = "store.pebble"

// Version is the plugin's own version, reported by Describe.
const Version = "0.1.0"

// Capabilities the pebble store reports in Describe.
const (
	// CapabilityAtomicBatch: Batch applies all ops or none.
	CapabilityAtomicBatch = "store.atomic-batch"
	// CapabilityOrderedQuery: Query streams keys in bytewise order.
	CapabilityOrderedQuery = "store.ordered-query"
	// CapabilityDurable: synced writes survive a crash of the process or machine.
	CapabilityDurable = "store.durable"
)

// Compile-time guards.
var (
	_ sdk.Plugin         = (*Pebble)(nil)
	_ sdk.Store          = (*Pebble)(nil)
	_ sdk.StatusReporter = (*Pebble)(nil)
)

// Option configures a Pebble at construction.
type Option func(*Pebble)

// WithLogger sets the logger pebble's own messages go to (scoped with
// plugin=store.pebble). Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(p *Pebble) {
		if l != nil {
			p.logger = l
		}
	}
}

// Pebble is the pebble-backed store plugin. The zero value is not usable;
// call New. All methods are safe for concurrent use.
type Pebble struct {
	logger *slog.Logger

	mu         sync.Mutex
	cfg        Config
	configured bool
	db         *pebble.DB
	stopping   bool
	// stopFlag mirrors stopping for the per-item check of long queries.
	stopFlag atomic.Bool
	inflight int
	// idle is closed when inflight drops to zero during a Stop.
	idle chan struct{}
}

// New returns an unconfigured store. It has no side effects.
func New(opts ...Option) *Pebble {
	p := &Pebble{logger: slog.Default()}
	for _, o := range opts {
		o(p)
	}
	p.logger = p.logger.With("plugin", ID)
	return p
}

// Open is New, configure from cfg, and Start in one call, for linking the
// store in directly. The caller must Stop it.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Pebble, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("open pebble store: %w: path is empty", ErrNotConfigured)
	}
	switch {
	case cfg.CacheSize <= 0:
		cfg.CacheSize = DefaultCacheSize
	case cfg.CacheSize < minCacheSize:
		cfg.CacheSize = minCacheSize
	}
	p := New(opts...)
	p.cfg, p.configured = cfg, true
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Describe reports the plugin's ID, kinds, version, capabilities and
// config schema.
func (p *Pebble) Describe(ctx context.Context) (sdk.Description, error) {
	return sdk.Description{
		ID:           ID,
		Kinds:        []sdk.Kind{sdk.KindStore},
		Version:      Version,
		Capabilities: []string{CapabilityAtomicBatch, CapabilityOrderedQuery, CapabilityDurable},
		ConfigSchema: ConfigSchema(),
	}, nil
}

// Configure validates the config subtree and, when it has no errors,
// applies it for the next Start. Bad values come back as diagnostics naming
// the key; the returned error is only for a store that is running.
func (p *Pebble) Configure(ctx context.Context, config map[string]any) ([]sdk.Diagnostic, error) {
	cfg, diags := ParseConfig(config)
	for _, d := range diags {
		if d.Severity == sdk.SeverityError {
			return diags, nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.db != nil {
		return diags, fmt.Errorf("configure %s: store is running; stop it first", ID)
	}
	p.cfg, p.configured = cfg, true
	return diags, nil
}

// Start opens the data directory, creating it (mode 0700) if needed. It
// fails with ErrLocked when another process has the directory open.
// Starting a running store is a no-op; a stopped store may be started again.
func (p *Pebble) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start %s: %w", ID, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.db != nil {
		if p.stopping {
			return fmt.Errorf("start %s: %w: a stop is in progress", ID, ErrClosed)
		}
		return nil
	}
	if !p.configured {
		return fmt.Errorf("start %s: %w: set %q", ID, ErrNotConfigured, KeyPath)
	}
	dir := p.cfg.Path
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("start %s: create data directory: %w", ID, err)
	}
	cache := pebble.NewCache(p.cfg.CacheSize)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{p.logger},
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		if isLockError(err) {
			return fmt.Errorf("start %s: %w: %s (is another skein node or store plugin running on it?)", ID, ErrLocked, dir)
		}
		return fmt.Errorf("start %s: open %s: %w", ID, dir, err)
	}
	p.db, p.stopping, p.inflight, p.idle = db, false, 0, nil
	p.stopFlag.Store(false)
	p.logger.Debug("store opened", "path", dir, "sync_writes", p.cfg.SyncWrites, "cache_size", p.cfg.CacheSize)
	return nil
}

func isLockError(err error) bool {
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EWOULDBLOCK) {
		return true
	}
	// pebble reports a lock held in this process without an errno.
	return bytes.Contains([]byte(err.Error()), []byte("lock held by current process"))
}

// Stop closes the store: new operations fail with ErrClosed, operations in
// flight (including open queries) are waited for until ctx ends, then
// pebble is closed. It is idempotent and safe before or after a partial
// Start. If ctx ends first the store stays closed to new operations and a
// later Stop finishes the job.
func (p *Pebble) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.db == nil {
		p.mu.Unlock()
		return nil
	}
	p.stopping = true
	p.stopFlag.Store(true)
	var idle chan struct{}
	if p.inflight > 0 {
		if p.idle == nil {
			p.idle = make(chan struct{})
		}
		idle = p.idle
	}
	p.mu.Unlock()

	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("stop %s: waiting for operations in flight: %w", ID, ctx.Err())
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.db == nil { // a concurrent Stop finished first
		return nil
	}
	err := p.db.Close()
	p.db = nil
	if err != nil {
		return fmt.Errorf("stop %s: close: %w", ID, err)
	}
	p.logger.Debug("store closed", "path", p.cfg.Path)
	return nil
}

// Status reports whether the store is open, with its path and disk usage.
func (p *Pebble) Status(ctx context.Context) (sdk.Status, error) {
	db, err := p.acquire()
	if err != nil {
		return sdk.Status{Healthy: false, Message: err.Error()}, nil
	}
	defer p.release()
	m := db.Metrics()
	return sdk.Status{
		Healthy: true,
		Message: "open",
		Details: map[string]string{
			"path":        p.cfg.Path,
			"sync_writes": strconv.FormatBool(p.cfg.SyncWrites),
			"disk_bytes":  strconv.FormatUint(m.DiskSpaceUsage(), 10),
		},
	}, nil
}

// acquire returns the open db and counts an operation in flight; every
// successful acquire must be paired with release.
func (p *Pebble) acquire() (*pebble.DB, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.db == nil:
		return nil, ErrNotStarted
	case p.stopping:
		return nil, ErrClosed
	}
	p.inflight++
	return p.db, nil
}

func (p *Pebble) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight--
	if p.inflight == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// stopRequested reports whether Stop has begun (checked by long queries).
func (p *Pebble) stopRequested() bool {
	return p.stopFlag.Load()
}

func (p *Pebble) writeOptions() *pebble.WriteOptions {
	if p.cfg.SyncWrites {
		return pebble.Sync
	}
	return pebble.NoSync
}

// Get returns a copy of the value stored under key, or sdk.ErrNotFound.
func (p *Pebble) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := checkKey(ctx, key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	db, err := p.acquire()
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	defer p.release()
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, sdk.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	out := make([]byte, len(v))
	copy(out, v)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	return out, nil
}

// Has reports whether key is present.
func (p *Pebble) Has(ctx context.Context, key []byte) (bool, error) {
	if err := checkKey(ctx, key); err != nil {
		return false, fmt.Errorf("has: %w", err)
	}
	db, err := p.acquire()
	if err != nil {
		return false, fmt.Errorf("has: %w", err)
	}
	defer p.release()
	_, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("has: %w", err)
	}
	if err := closer.Close(); err != nil {
		return false, fmt.Errorf("has: %w", err)
	}
	return true, nil
}

// Put stores value under key (a nil value is stored as empty). It is
// fsynced only when sync_writes is set.
func (p *Pebble) Put(ctx context.Context, key, value []byte) error {
	if err := checkKey(ctx, key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	db, err := p.acquire()
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	defer p.release()
	if err := db.Set(key, value, p.writeOptions()); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	return nil
}

// Delete removes key; deleting an absent key is not an error. It is
// fsynced only when sync_writes is set.
func (p *Pebble) Delete(ctx context.Context, key []byte) error {
	if err := checkKey(ctx, key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	db, err := p.acquire()
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	defer p.release()
	if err := db.Delete(key, p.writeOptions()); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// Batch applies ops atomically, in order (a later op on the same key wins).
// With sync it returns only once the batch, and every write before it, is
// durable. An op with an empty key fails the whole batch before anything is
// written.
func (p *Pebble) Batch(ctx context.Context, ops []sdk.Op, sync bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	for i, op := range ops {
		if len(op.Key) == 0 {
			return fmt.Errorf("batch: op %d: %w", i, ErrEmptyKey)
		}
	}
	db, err := p.acquire()
	if err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	defer p.release()
	wo := p.writeOptions()
	if sync {
		wo = pebble.Sync
	}
	if len(ops) == 0 {
		if sync {
			return p.syncDB(db)
		}
		return nil
	}
	// Presized: a batch grown by doubling copies its records each time
	// (a join's index batch holds thousands).
	size := 0
	for _, op := range ops {
		size += len(op.Key) + len(op.Value) + 2*binary.MaxVarintLen32 + 1
	}
	b := db.NewBatchWithSize(size)
	defer b.Close()
	for i, op := range ops {
		var err error
		if op.Delete {
			err = b.Delete(op.Key, nil)
		} else {
			err = b.Set(op.Key, op.Value, nil)
		}
		if err != nil {
			return fmt.Errorf("batch: op %d: %w", i, err)
		}
	}
	if err := b.Commit(wo); err != nil {
		return fmt.Errorf("batch: commit: %w", err)
	}
	return nil
}

// Sync makes every write acknowledged so far durable.
func (p *Pebble) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	db, err := p.acquire()
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	defer p.release()
	return p.syncDB(db)
}

// syncDB fsyncs the write-ahead log: an empty synced WAL record forces
// everything written before it to disk.
func (p *Pebble) syncDB(db *pebble.DB) error {
	if err := db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// Query streams the pairs whose key starts with q.Prefix, in key order,
// from a consistent snapshot taken when iteration begins. Keys and values
// are copies. Iteration stops with an error when ctx ends or Stop begins.
func (p *Pebble) Query(ctx context.Context, q sdk.Query) iter.Seq2[sdk.KeyValue, error] {
	return func(yield func(sdk.KeyValue, error) bool) {
		if q.Limit < 0 {
			yield(sdk.KeyValue{}, fmt.Errorf("query: %w %d", errNegativeLimit, q.Limit))
			return
		}
		if err := ctx.Err(); err != nil {
			yield(sdk.KeyValue{}, fmt.Errorf("query: %w", err))
			return
		}
		db, err := p.acquire()
		if err != nil {
			yield(sdk.KeyValue{}, fmt.Errorf("query: %w", err))
			return
		}
		defer p.release()
		opts := &pebble.IterOptions{}
		if len(q.Prefix) > 0 {
			opts.LowerBound = q.Prefix
			opts.UpperBound = prefixEnd(q.Prefix)
		}
		it, err := db.NewIterWithContext(ctx, opts)
		if err != nil {
			yield(sdk.KeyValue{}, fmt.Errorf("query: %w", err))
			return
		}
		defer it.Close()
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			if q.Limit > 0 && n >= q.Limit {
				return
			}
			if err := ctx.Err(); err != nil {
				yield(sdk.KeyValue{}, fmt.Errorf("query: %w", err))
				return
			}
			if p.stopRequested() {
				yield(sdk.KeyValue{}, fmt.Errorf("query: %w", ErrClosed))
				return
			}
			kv := sdk.KeyValue{Key: bytes.Clone(it.Key())}
			if kv.Key == nil {
				kv.Key = []byte{}
			}
			if !q.KeysOnly {
				v, err := it.ValueAndErr()
				if err != nil {
					yield(sdk.KeyValue{}, fmt.Errorf("query: value of %x: %w", it.Key(), err))
					return
				}
				kv.Value = make([]byte, len(v))
				copy(kv.Value, v)
			}
			n++
			if !yield(kv, nil) {
				return
			}
		}
		if err := it.Error(); err != nil {
			yield(sdk.KeyValue{}, fmt.Errorf("query: %w", err))
		}
	}
}

// prefixEnd returns the smallest key greater than every key with prefix,
// or nil when there is none (the prefix is all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func checkKey(ctx context.Context, key []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	return nil
}

// pebbleLogger routes pebble's messages into slog. Its informational chatter
// goes to debug level.
type pebbleLogger struct{ l *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.l.Debug(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf is called by pebble on an unrecoverable storage error, after which
// pebble must not continue: the message is logged and the process panics,
// as pebble's own default logger exits.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.l.Error("fatal storage error", "error", msg)
	panic("store.pebble: fatal storage error: " + msg)
}
