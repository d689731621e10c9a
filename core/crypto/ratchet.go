package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"sync"
)

// Ratchet limits.
const (
	// DefaultRatchetWindow is how many skipped message keys a ReceivingChain
	// keeps by default.
	DefaultRatchetWindow = 1000
	// MaxRatchetWindow is the largest window WithWindow and UnmarshalBinary
	// accept (bounds memory: 40 bytes per kept key).
	MaxRatchetWindow = 1 << 16
)

// Labels of the ratchet's HMAC-SHA256 derivations.
const (
	ratchetMessageLabel = "skein/v1/ratchet/message-key"
	ratchetChainLabel   = "skein/v1/ratchet/chain-key"
)

// Serialised state tags and version.
const (
	sendingChainTag   = 'S'
	receivingChainTag = 'R'
	chainVersion      = 1
	sendingChainSize  = 2 + 8 + KeySize
	receivingHeadSize = 2 + 4 + 8 + 8 + KeySize + 4
	skippedEntrySize  = 8 + KeySize
)

// ratchetStep derives the message key for the current index and the chain key
// for the next one:
//
//	messageKey = HMAC-SHA256(chainKey, "skein/v1/ratchet/message-key")
//	nextChain  = HMAC-SHA256(chainKey, "skein/v1/ratchet/chain-key")
func ratchetStep(chain *[KeySize]byte) (mk, next [KeySize]byte) {
	h := hmac.New(sha256.New, chain[:])
	h.Write([]byte(ratchetMessageLabel))
	h.Sum(mk[:0])
	h.Reset()
	h.Write([]byte(ratchetChainLabel))
	h.Sum(next[:0])
	return mk, next
}

// SendingChain is the sending half of one device's ratchet in one group
// epoch. Each call to Next returns a fresh message key and forgets the chain
// key that produced it. It is safe for concurrent use.
type SendingChain struct {
	mu    sync.Mutex
	next  uint64
	chain [KeySize]byte
}

// NewSendingChain starts a sending chain whose first message has index start
// and is derived from chainKey. The caller should zero its copy of chainKey.
func NewSendingChain(chainKey [KeySize]byte, start uint64) *SendingChain {
	return &SendingChain{next: start, chain: chainKey}
}

// Next returns the index of the next message and its message key, and
// advances the chain (the old chain key is overwritten). The caller should
// zero the message key after use. Indices are never reused; the chain cannot
// realistically reach 2^64 messages.
func (s *SendingChain) Next() (index uint64, messageKey [KeySize]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mk, next := ratchetStep(&s.chain)
	s.chain = next
	index = s.next
	s.next++
	return index, mk
}

// Share returns the index of the next message and the chain key that derives
// it: what a new receiver needs (NewReceivingChain(chainKey, next)) to read
// this device's messages from now on, and nothing earlier.
func (s *SendingChain) Share() (next uint64, chainKey [KeySize]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next, s.chain
}

// MarshalBinary encodes the state: 'S' || 0x01 || next(uint64 BE) || chain key.
// It never fails. The output is secret; store it in a Keystore.
func (s *SendingChain) MarshalBinary() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]byte, 0, sendingChainSize)
	out = append(out, sendingChainTag, chainVersion)
	out = binary.BigEndian.AppendUint64(out, s.next)
	return append(out, s.chain[:]...), nil
}

// UnmarshalBinary restores a state written by MarshalBinary; anything else is
// an error wrapping ErrMalformed.
func (s *SendingChain) UnmarshalBinary(b []byte) error {
	if len(b) != sendingChainSize || b[0] != sendingChainTag || b[1] != chainVersion {
		return fmt.Errorf("unmarshal sending chain: %w", ErrMalformed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = binary.BigEndian.Uint64(b[2:10])
	copy(s.chain[:], b[10:])
	return nil
}

// Destroy zeroes the chain key. The chain must not be used afterwards.
func (s *SendingChain) Destroy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.chain[:])
}

// String prints the next index only, never key material.
func (s *SendingChain) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("SendingChain(next=%d)", s.next)
}

// GoString is the same as String.
func (s *SendingChain) GoString() string { return s.String() }

// Format prints String for every verb.
func (s *SendingChain) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// RatchetOption configures a ReceivingChain.
type RatchetOption func(*ReceivingChain) error

// WithWindow sets how many skipped message keys the chain keeps (1 to
// MaxRatchetWindow; default DefaultRatchetWindow). It is also how far ahead
// of the chain an index may be: KeyFor(i) needs i < next+window.
func WithWindow(n int) RatchetOption {
	return func(r *ReceivingChain) error {
		if n < 1 || n > MaxRatchetWindow {
			return fmt.Errorf("ratchet window %d: %w: want 1..%d", n, ErrInvalidOption, MaxRatchetWindow)
		}
		r.window = uint64(n)
		return nil
	}
}

// ReceivingChain is the receiving half of one sender device's ratchet in one
// group epoch. KeyFor hands out each message key at most once:
//
//   - index < start: ErrBeforeChainStart.
//   - index >= next: if index-next >= window, ErrTooFarAhead (nothing
//     changes). Otherwise the chain advances to index+1; the keys of the
//     skipped indices next..index-1 are kept.
//   - index < next: the kept key is returned and deleted. If it is not kept:
//     ErrKeyExpired when index < next-window (outside the window), otherwise
//     ErrKeyUsed (a replay).
//
// Only skipped keys with index >= next-window are kept, so at most window
// keys are in memory however the sender (or a flood) picks indices.
//
// Call KeyFor only for a message whose signature was verified: it consumes
// the key. ReceivingChain is safe for concurrent use. Create one with
// NewReceivingChain or UnmarshalBinary; the zero value refuses every index.
type ReceivingChain struct {
	mu      sync.Mutex
	window  uint64
	start   uint64
	next    uint64
	chain   [KeySize]byte
	skipped map[uint64][KeySize]byte
}

// NewReceivingChain starts a receiving chain at index start (the first index
// chainKey derives, as given by SendingChain.Share or by the sender's
// initial chain key). The caller should zero its copy of chainKey.
func NewReceivingChain(chainKey [KeySize]byte, start uint64, opts ...RatchetOption) (*ReceivingChain, error) {
	r := &ReceivingChain{
		window:  DefaultRatchetWindow,
		start:   start,
		next:    start,
		chain:   chainKey,
		skipped: make(map[uint64][KeySize]byte),
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, fmt.Errorf("new receiving chain: %w", err)
		}
	}
	return r, nil
}

// KeyFor returns the message key for index, following the rules on
// ReceivingChain. The caller should zero the key after use.
func (r *ReceivingChain) KeyFor(index uint64) ([KeySize]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var zero [KeySize]byte
	switch {
	case index < r.start:
		return zero, fmt.Errorf("ratchet key for %d (start %d): %w", index, r.start, ErrBeforeChainStart)
	case index >= r.next:
		if index-r.next >= r.window {
			return zero, fmt.Errorf("ratchet key for %d (next %d, window %d): %w", index, r.next, r.window, ErrTooFarAhead)
		}
		if index == math.MaxUint64 {
			return zero, fmt.Errorf("ratchet key for %d: %w: last index", index, ErrTooFarAhead)
		}
		oldLow := r.low(r.next)
		for r.next < index {
			mk, next := ratchetStep(&r.chain)
			r.skipped[r.next] = mk
			r.chain = next
			r.next++
		}
		mk, next := ratchetStep(&r.chain)
		r.chain = next
		r.next++
		// Drop kept keys that fell out of [next-window, next). low only
		// grows, so each index is visited once over the chain's life.
		for i, newLow := oldLow, r.low(r.next); i < newLow && len(r.skipped) > 0; i++ {
			if _, ok := r.skipped[i]; ok {
				r.skipped[i] = zero
				delete(r.skipped, i)
			}
		}
		return mk, nil
	default:
		if mk, ok := r.skipped[index]; ok {
			r.skipped[index] = zero // overwrite the slot before dropping it
			delete(r.skipped, index)
			return mk, nil
		}
		if r.next-index > r.window {
			return zero, fmt.Errorf("ratchet key for %d (next %d, window %d): %w", index, r.next, r.window, ErrKeyExpired)
		}
		return zero, fmt.Errorf("ratchet key for %d: %w", index, ErrKeyUsed)
	}
}

// low returns the lowest index whose skipped key may be kept, given next.
func (r *ReceivingChain) low(next uint64) uint64 {
	if next > r.window && next-r.window > r.start {
		return next - r.window
	}
	return r.start
}

// Next returns the index the chain key currently derives (one past the
// highest index handed out so far, or start).
func (r *ReceivingChain) Next() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// Skipped returns how many skipped message keys are kept.
func (r *ReceivingChain) Skipped() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.skipped)
}

// MarshalBinary encodes the state:
//
//	'R' || 0x01 || window(uint32) || start(uint64) || next(uint64) ||
//	chain key(32) || count(uint32) || count × (index(uint64) || key(32))
//
// all big-endian, kept keys in increasing index order. It never fails. The
// output is secret; store it in a Keystore. It holds no used message key and
// no chain key older than the current one.
func (r *ReceivingChain) MarshalBinary() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	idxs := make([]uint64, 0, len(r.skipped))
	for i := range r.skipped {
		idxs = append(idxs, i)
	}
	sort.Slice(idxs, func(a, b int) bool { return idxs[a] < idxs[b] })
	out := make([]byte, 0, receivingHeadSize+len(idxs)*skippedEntrySize)
	out = append(out, receivingChainTag, chainVersion)
	out = binary.BigEndian.AppendUint32(out, uint32(r.window))
	out = binary.BigEndian.AppendUint64(out, r.start)
	out = binary.BigEndian.AppendUint64(out, r.next)
	out = append(out, r.chain[:]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(idxs)))
	for _, i := range idxs {
		k := r.skipped[i]
		out = binary.BigEndian.AppendUint64(out, i)
		out = append(out, k[:]...)
	}
	return out, nil
}

// UnmarshalBinary restores a state written by MarshalBinary, including its
// window. It validates everything (lengths, window range, start <= next,
// kept indices strictly increasing and inside [max(start, next-window),
// next)); anything else is an error wrapping ErrMalformed and leaves r
// unchanged.
func (r *ReceivingChain) UnmarshalBinary(b []byte) error {
	bad := func(why string) error {
		return fmt.Errorf("unmarshal receiving chain: %w: %s", ErrMalformed, why)
	}
	if len(b) < receivingHeadSize {
		return bad("short")
	}
	if b[0] != receivingChainTag || b[1] != chainVersion {
		return bad("tag or version")
	}
	window := uint64(binary.BigEndian.Uint32(b[2:6]))
	start := binary.BigEndian.Uint64(b[6:14])
	next := binary.BigEndian.Uint64(b[14:22])
	var chain [KeySize]byte
	copy(chain[:], b[22:54])
	count := uint64(binary.BigEndian.Uint32(b[54:58]))
	if window < 1 || window > MaxRatchetWindow {
		return bad("window out of range")
	}
	if start > next {
		return bad("start after next")
	}
	if count > window {
		return bad("more kept keys than the window")
	}
	if uint64(len(b)-receivingHeadSize) != count*skippedEntrySize {
		return bad("length does not match count")
	}
	low := start
	if next > window && next-window > start {
		low = next - window
	}
	skipped := make(map[uint64][KeySize]byte, count)
	p := b[receivingHeadSize:]
	var prev uint64
	for i := uint64(0); i < count; i++ {
		idx := binary.BigEndian.Uint64(p[:8])
		if idx < low || idx >= next || (i > 0 && idx <= prev) {
			return bad("kept index out of range or order")
		}
		var k [KeySize]byte
		copy(k[:], p[8:skippedEntrySize])
		skipped[idx] = k
		prev = idx
		p = p[skippedEntrySize:]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.window, r.start, r.next, r.chain, r.skipped = window, start, next, chain, skipped
	return nil
}

// Destroy zeroes the chain key and drops kept keys. The chain must not be
// used afterwards.
func (r *ReceivingChain) Destroy() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.chain[:])
	clear(r.skipped)
}

// String prints indices only, never key material.
func (r *ReceivingChain) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("ReceivingChain(start=%d next=%d kept=%d window=%d)", r.start, r.next, len(r.skipped), r.window)
}

// GoString is the same as String.
func (r *ReceivingChain) GoString() string { return r.String() }

// Format prints String for every verb.
func (r *ReceivingChain) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }
