package log

import (
	"context"
	"errors"
	"fmt"
)

// Order is how a log totally orders its entries: by Lamport time first
// (so the order extends the causal order: an entry's time exceeds that of
// every entry it names in next), then by a 32-byte tie-break of the
// order's choosing, then by CID. Only the tie-break among entries of the
// same time, which are concurrent, is swappable: time first is what the
// index's lookups rely on (Position, Since, Until search by time) and what
// makes the order causal.
//
// Every replica of a log must use the same Order, or their total orders
// differ (each stays valid and causal). The log records a non-default
// order in its KV, and Open refuses another (ErrOrderMismatch).
type Order interface {
	// Name identifies the order in the KV and in scenarios, e.g.
	// "lamport".
	Name() string
	// Tiebreak returns the key that orders e among the entries of its
	// time, compared bytewise. It must depend on e's signed content
	// only (the same on every replica).
	Tiebreak(e *Entry) [32]byte
}

// Names of the built-in orders.
const (
	// OrderLamport: Lamport time, then writer key, then CID (the default,
	// the ipfs-log order). Concurrent entries of one writer stay
	// together, and of two writers the one with the lower key always
	// comes first.
	OrderLamport = "lamport"
	// OrderLamportCID: Lamport time, then CID. No writer is favoured:
	// concurrent entries are ordered by their hash, uniformly at random
	// for each entry.
	OrderLamportCID = "lamport-cid"
)

// ErrOrderMismatch: a log is opened with another Order than the one it
// was written with.
var ErrOrderMismatch = errors.New("log order mismatch")

// LamportOrder is the default Order, OrderLamport.
type LamportOrder struct{}

// Name returns OrderLamport.
func (LamportOrder) Name() string { return OrderLamport }

// Tiebreak returns the writer's public key.
func (LamportOrder) Tiebreak(e *Entry) [32]byte {
	var k [32]byte
	copy(k[:], e.Writer)
	return k
}

// LamportCIDOrder is the Order OrderLamportCID.
type LamportCIDOrder struct{}

// Name returns OrderLamportCID.
func (LamportCIDOrder) Name() string { return OrderLamportCID }

// Tiebreak returns the SHA-256 digest of the entry block (its CID's last
// 32 bytes).
func (LamportCIDOrder) Tiebreak(e *Entry) [32]byte {
	var k [32]byte
	c := e.cid.KeyString()
	copy(k[:], c[len(c)-32:])
	return k
}

// OrderByName returns the built-in order named name.
func OrderByName(name string) (Order, error) {
	switch name {
	case OrderLamport:
		return LamportOrder{}, nil
	case OrderLamportCID:
		return LamportCIDOrder{}, nil
	}
	return nil, fmt.Errorf("%w: log order %q: the built-in orders are %q and %q", ErrInvalidOption, name, OrderLamport, OrderLamportCID)
}

// WithOrder sets the total order of the log's entries (default
// LamportOrder). A log remembers a non-default order: reopening it with
// another is an error wrapping ErrOrderMismatch.
func WithOrder(o Order) Option {
	return func(op *options) error {
		if o == nil || o.Name() == "" || len(o.Name()) > MaxIDLength {
			return fmt.Errorf("%w: a log order needs a name of 1 to %d bytes", ErrInvalidOption, MaxIDLength)
		}
		op.order = o
		return nil
	}
}

// tagOrderName (after the prefix) -> the name of a non-default order.
const tagOrderName = 'r'

// orderKeyOf is e's key in l's order.
func (l *Log) orderKeyOf(e *Entry) orderKey {
	k := makeOrderKey(e)
	if l.opts.order != nil {
		tb := l.opts.order.Tiebreak(e)
		copy(k[8:40], tb[:])
	}
	return k
}

// checkOrder compares l's order with the one its KV records; a log
// written before with the default records none. A new (empty) log
// records a non-default order. Open calls it once the index is read.
func (l *Log) checkOrder(ctx context.Context) error {
	want := OrderLamport
	if l.opts.order != nil {
		want = l.opts.order.Name()
	}
	stored, err := l.kv.Get(ctx, l.key(tagOrderName))
	switch {
	case errors.Is(err, ErrNotFound):
		if len(l.index) > 0 || l.openLen > 0 || want == OrderLamport {
			stored = []byte(OrderLamport)
			break
		}
		if err := l.kv.Put(ctx, l.key(tagOrderName), []byte(want)); err != nil {
			return fmt.Errorf("write order: %w", err)
		}
		stored = []byte(want)
	case err != nil:
		return fmt.Errorf("read order: %w", err)
	}
	if string(stored) != want {
		return fmt.Errorf("%w: the log is ordered by %q, opened with %q", ErrOrderMismatch, stored, want)
	}
	if want == OrderLamport {
		l.opts.order = nil // the default key, without an interface call per entry
	}
	return nil
}
