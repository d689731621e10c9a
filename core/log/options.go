package log

import (
	"fmt"
	"log/slog"
	"runtime"
)

// Defaults for the limits, each overridable by an Option.
const (
	// DefaultMaxEntrySize is the largest encoded entry accepted (1 MiB).
	DefaultMaxEntrySize = 1 << 20
	// DefaultMaxNext is the largest accepted next fan-in.
	DefaultMaxNext = 64
	// DefaultMaxRefs is the largest accepted number of refs.
	DefaultMaxRefs = 64
	// DefaultAppendRefs is how many skip pointers Append writes on an
	// entry that carries them (to the entries k, 2k, 4k, ... places back in
	// the total order, k = DefaultRefsEvery).
	DefaultAppendRefs = 3
	// DefaultRefsEvery: only every 16th entry (by place in the total
	// order) carries skip pointers, to other such entries 16, 32 and 64
	// places back. Refs cost 41 bytes each in every entry that carries
	// them; the bulk entry fetch does not need them, and a fetch over the
	// block network still walks the log 64 entries at a time along them.
	DefaultRefsEvery = 16
	// DefaultMaxClockJump is how far past the largest next time an entry's
	// time may be.
	DefaultMaxClockJump = 1 << 16
	// DefaultJoinParallelism bounds the blocks one Join has in flight.
	DefaultJoinParallelism = 32
	// DefaultMaxJoinEntries bounds the new entries one Join fetches.
	DefaultMaxJoinEntries = 1 << 20
	// DefaultMaxJoinBytes bounds the block bytes one Join fetches (256 MiB).
	DefaultMaxJoinBytes = 256 << 20
)

// Option configures Open.
type Option func(*options) error

type options struct {
	maxEntrySize      int
	maxNext           int
	maxRefs           int
	appendRefs        int
	refsEvery         int
	maxClockJump      uint64
	joinParallelism   int
	verifyParallelism int
	maxJoinEntries    int
	maxJoinBytes      int64
	keyPrefix         []byte
	syncWrites        bool
	placeLater        bool
	lazyIndexMin      int // logs of at least this many entries read their index after Open
	logger            *slog.Logger
	order             Order // nil: LamportOrder (order.go)
}

func defaultOptions() options {
	return options{
		maxEntrySize:      DefaultMaxEntrySize,
		maxNext:           DefaultMaxNext,
		maxRefs:           DefaultMaxRefs,
		appendRefs:        DefaultAppendRefs,
		refsEvery:         DefaultRefsEvery,
		maxClockJump:      DefaultMaxClockJump,
		joinParallelism:   DefaultJoinParallelism,
		verifyParallelism: runtime.GOMAXPROCS(0),
		maxJoinEntries:    DefaultMaxJoinEntries,
		maxJoinBytes:      DefaultMaxJoinBytes,
		logger:            slog.New(slog.DiscardHandler),
		lazyIndexMin:      lazyIndexMin,
	}
}

// lazyIndexMin is the size from which Open reads a log's index in the
// background (below it, reading it costs less than a millisecond or two).
const lazyIndexMin = 1 << 14

func positive(name string, n int) error {
	if n <= 0 {
		return fmt.Errorf("%w: %s must be positive, got %d", ErrInvalidOption, name, n)
	}
	return nil
}

// WithMaxEntrySize sets the largest encoded entry, in bytes, that Append
// writes and Join accepts (default DefaultMaxEntrySize).
func WithMaxEntrySize(n int) Option {
	return func(o *options) error { o.maxEntrySize = n; return positive("max entry size", n) }
}

// WithMaxNext sets the largest next fan-in accepted (default DefaultMaxNext).
// Append merges at most this many heads; more heads are merged by later appends.
func WithMaxNext(n int) Option {
	return func(o *options) error { o.maxNext = n; return positive("max next", n) }
}

// WithMaxRefs sets the largest number of refs accepted (default DefaultMaxRefs).
func WithMaxRefs(n int) Option {
	return func(o *options) error {
		o.maxRefs = n
		if n < 0 {
			return fmt.Errorf("%w: max refs must not be negative, got %d", ErrInvalidOption, n)
		}
		return nil
	}
}

// WithRefsEvery sets which entries carry skip pointers: those whose place
// in the total order is a multiple of k, pointing k, 2k, 4k, ... places
// back (default DefaultRefsEvery; 1 puts them on every entry, 2, 4, 8, ...
// places back, as Skein did before).
func WithRefsEvery(k int) Option {
	return func(o *options) error {
		o.refsEvery = k
		if k < 1 || k > 1<<16 {
			return fmt.Errorf("%w: refs every must be in [1, 65536], got %d", ErrInvalidOption, k)
		}
		return nil
	}
}

// WithAppendRefs sets how many skip pointers Append writes on an entry
// that carries them (default DefaultAppendRefs; 0 writes none). Each costs
// 41 bytes in the entry.
func WithAppendRefs(n int) Option {
	return func(o *options) error {
		o.appendRefs = n
		if n < 0 || n > 62 {
			return fmt.Errorf("%w: append refs must be in [0, 62], got %d", ErrInvalidOption, n)
		}
		return nil
	}
}

// WithMaxClockJump sets how far an entry's time may exceed the largest time
// under its next (default DefaultMaxClockJump; 1 is the strictest).
func WithMaxClockJump(n uint64) Option {
	return func(o *options) error {
		o.maxClockJump = n
		if n == 0 {
			return fmt.Errorf("%w: max clock jump must be at least 1", ErrInvalidOption)
		}
		return nil
	}
}

// WithJoinParallelism bounds the blocks one Join has in flight (default
// DefaultJoinParallelism).
func WithJoinParallelism(n int) Option {
	return func(o *options) error { o.joinParallelism = n; return positive("join parallelism", n) }
}

// WithVerifyParallelism bounds the goroutines verifying signatures during a
// Join (default GOMAXPROCS).
func WithVerifyParallelism(n int) Option {
	return func(o *options) error { o.verifyParallelism = n; return positive("verify parallelism", n) }
}

// WithMaxJoinEntries bounds how many new entries one Join fetches (its
// fetch depth; default DefaultMaxJoinEntries). A join that would need more
// returns a JoinError wrapping ErrJoinLimit and adds only the entries whose
// ancestry it fetched completely.
func WithMaxJoinEntries(n int) Option {
	return func(o *options) error { o.maxJoinEntries = n; return positive("max join entries", n) }
}

// WithMaxJoinBytes bounds the block bytes one Join fetches (default
// DefaultMaxJoinBytes), so a peer cannot make a join hold unbounded data
// before verification ends. Past it, Join behaves as at WithMaxJoinEntries.
func WithMaxJoinBytes(n int64) Option {
	return func(o *options) error {
		o.maxJoinBytes = n
		if n <= 0 {
			return fmt.Errorf("%w: max join bytes must be positive, got %d", ErrInvalidOption, n)
		}
		return nil
	}
}

// WithKeyPrefix makes the log keep its KV keys under prefix, so several logs
// can share one KV (default: no prefix, the KV is the log's own).
func WithKeyPrefix(prefix []byte) Option {
	return func(o *options) error { o.keyPrefix = append([]byte(nil), prefix...); return nil }
}

// WithSyncWrites makes every Append and Join wait until its KV batch is
// durable (default false: durable at the KV's next sync).
func WithSyncWrites(sync bool) Option {
	return func(o *options) error { o.syncWrites = sync; return nil }
}

// WithBlocksInKV makes a write put its entries' blocks into its KV batch,
// with their index, and into the BlockStore afterwards, off the writer's
// path; the KV copy is deleted once the BlockStore holds the block, and
// Open places again what a stopped process left unplaced. An append is
// then durable after one synced write (the KV's), not two in series (the
// BlockStore's, then the KV's), and a BlockStore that is slow to write
// (a network out of process) is not waited for. Until a block is placed
// the log serves it from memory, but a reader of the BlockStore itself
// (a peer fetching it over the network) may wait for it a little. Default
// false: the blocks are put into the BlockStore, then the index into the
// KV, before a write returns.
func WithBlocksInKV(on bool) Option {
	return func(o *options) error { o.placeLater = on; return nil }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		o.logger = l
		return nil
	}
}
