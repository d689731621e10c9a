package crypto

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
)

func newChains(tb testing.TB, start uint64, opts ...RatchetOption) (*SendingChain, *ReceivingChain) {
	tb.Helper()
	ck := RandomKey()
	r, err := NewReceivingChain(ck, start, opts...)
	if err != nil {
		tb.Fatalf("new receiving chain: %v", err)
	}
	return NewSendingChain(ck, start), r
}

// sendN returns the sender's message keys for its next n messages, by index.
func sendN(tb testing.TB, s *SendingChain, n int) map[uint64][KeySize]byte {
	tb.Helper()
	keys := make(map[uint64][KeySize]byte, n)
	for range n {
		i, k := s.Next()
		if _, dup := keys[i]; dup {
			tb.Fatalf("index %d handed out twice", i)
		}
		keys[i] = k
	}
	return keys
}

func TestRatchetDelivery(t *testing.T) {
	tests := []struct {
		name  string
		start uint64
		order []uint64
	}{
		{"in order", 0, []uint64{0, 1, 2, 3, 4, 5, 6, 7}},
		{"reversed", 0, []uint64{7, 6, 5, 4, 3, 2, 1, 0}},
		{"interleaved", 0, []uint64{1, 0, 3, 2, 7, 4, 6, 5}},
		{"late first", 0, []uint64{5, 6, 7, 0, 1, 2, 3, 4}},
		{"nonzero start", 1000, []uint64{1002, 1000, 1001, 1007, 1003, 1006, 1005, 1004}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, r := newChains(t, tc.start)
			keys := sendN(t, s, len(tc.order))
			seen := map[[KeySize]byte]bool{}
			for _, idx := range tc.order {
				got, err := r.KeyFor(idx)
				if err != nil {
					t.Fatalf("KeyFor(%d): %v", idx, err)
				}
				if got != keys[idx] {
					t.Fatalf("KeyFor(%d) differs from the sender's key", idx)
				}
				if seen[got] {
					t.Fatalf("key for %d repeats an earlier key", idx)
				}
				seen[got] = true
			}
			if r.Skipped() != 0 {
				t.Fatalf("%d skipped keys kept after all were used", r.Skipped())
			}
		})
	}
}

func TestRatchetRejects(t *testing.T) {
	tests := []struct {
		name    string
		window  int
		start   uint64
		before  []uint64 // delivered first, must succeed
		index   uint64
		wantErr error
	}{
		{"replay in order", 10, 0, []uint64{0, 1}, 1, ErrKeyUsed},
		{"replay of a skipped key", 10, 0, []uint64{4, 2}, 2, ErrKeyUsed},
		{"replay of latest", 10, 0, []uint64{4}, 4, ErrKeyUsed},
		{"too far ahead", 10, 0, nil, 10, ErrTooFarAhead},
		{"too far ahead after progress", 10, 0, []uint64{5}, 16, ErrTooFarAhead},
		{"far beyond", 10, 0, nil, 1 << 40, ErrTooFarAhead},
		{"last index", 10, ^uint64(0) - 2, nil, ^uint64(0), ErrTooFarAhead},
		{"before chain start", 10, 100, nil, 99, ErrBeforeChainStart},
		{"zero before start", 10, 100, []uint64{105}, 0, ErrBeforeChainStart},
		{"evicted by window", 10, 0, []uint64{9, 18}, 3, ErrKeyExpired},
		{"used then out of window", 10, 0, []uint64{0, 9, 18}, 0, ErrKeyExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, r := newChains(t, tc.start, WithWindow(tc.window))
			for _, i := range tc.before {
				if _, err := r.KeyFor(i); err != nil {
					t.Fatalf("setup KeyFor(%d): %v", i, err)
				}
			}
			stateBefore, _ := r.MarshalBinary()
			if _, err := r.KeyFor(tc.index); !errors.Is(err, tc.wantErr) {
				t.Fatalf("KeyFor(%d): got %v, want %v", tc.index, err, tc.wantErr)
			}
			stateAfter, _ := r.MarshalBinary()
			if !bytes.Equal(stateBefore, stateAfter) {
				t.Fatal("a rejected KeyFor changed the chain state")
			}
		})
	}
}

func TestRatchetWindowBoundary(t *testing.T) {
	s, r := newChains(t, 0, WithWindow(10))
	keys := sendN(t, s, 30)
	// index next+window-1 is the farthest allowed jump.
	k9, err := r.KeyFor(9)
	if err != nil || k9 != keys[9] {
		t.Fatalf("KeyFor(9) with window 10: %v", err)
	}
	if r.Skipped() != 9 {
		t.Fatalf("kept %d skipped keys, want 9", r.Skipped())
	}
	// Jumping to 12 slides the window to [3, 13): 0, 1, 2 are evicted.
	if _, err := r.KeyFor(12); err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{0, 1, 2} {
		if _, err := r.KeyFor(i); !errors.Is(err, ErrKeyExpired) {
			t.Errorf("KeyFor(%d) after eviction: got %v, want ErrKeyExpired", i, err)
		}
	}
	for _, i := range []uint64{3, 8, 10, 11} {
		if k, err := r.KeyFor(i); err != nil || k != keys[i] {
			t.Errorf("KeyFor(%d) inside window: %v", i, err)
		}
	}
}

func TestRatchetFloodIsBounded(t *testing.T) {
	const window = 50
	_, r := newChains(t, 0, WithWindow(window))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		next := r.Next()
		// Jump as far as allowed, or try beyond and be refused.
		jump := rng.Uint64N(2 * window)
		_, err := r.KeyFor(next + jump)
		if jump >= window && !errors.Is(err, ErrTooFarAhead) {
			t.Fatalf("jump %d: got %v, want ErrTooFarAhead", jump, err)
		}
		if jump < window && err != nil {
			t.Fatalf("jump %d: %v", jump, err)
		}
		if r.Skipped() > window {
			t.Fatalf("kept %d keys, window is %d", r.Skipped(), window)
		}
	}
}

func TestRatchetMarshalRoundTrip(t *testing.T) {
	s, r := newChains(t, 7, WithWindow(20))
	keys := sendN(t, s, 40)
	for _, i := range []uint64{7, 12, 9, 20} {
		if _, err := r.KeyFor(i); err != nil {
			t.Fatal(err)
		}
	}
	state, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var r2 ReceivingChain
	if err := r2.UnmarshalBinary(state); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if again, _ := r2.MarshalBinary(); !bytes.Equal(state, again) {
		t.Fatal("re-encoded state differs")
	}
	if _, err := r2.KeyFor(12); !errors.Is(err, ErrKeyUsed) {
		t.Fatalf("restored chain replay of a key used before saving: got %v, want ErrKeyUsed", err)
	}
	for _, i := range []uint64{8, 10, 11, 13, 25, 21, 45} {
		k, err := r2.KeyFor(i)
		if err != nil || k != keys[i] {
			t.Fatalf("restored KeyFor(%d): %v", i, err)
		}
	}
	if _, err := r2.KeyFor(45); !errors.Is(err, ErrKeyUsed) {
		t.Fatalf("restored chain replay: got %v, want ErrKeyUsed", err)
	}
	if _, err := r2.KeyFor(46 + 20); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("restored window: got %v, want ErrTooFarAhead", err)
	}

	sstate, _ := s.MarshalBinary()
	var s2 SendingChain
	if err := s2.UnmarshalBinary(sstate); err != nil {
		t.Fatal(err)
	}
	i1, k1 := s.Next()
	i2, k2 := s2.Next()
	if i1 != i2 || k1 != k2 {
		t.Fatal("restored sending chain diverges")
	}
}

func TestRatchetShare(t *testing.T) {
	s, _ := newChains(t, 0)
	sendN(t, s, 5)
	next, ck := s.Share()
	late, err := NewReceivingChain(ck, next)
	if err != nil {
		t.Fatal(err)
	}
	i, k := s.Next()
	got, err := late.KeyFor(i)
	if err != nil || got != k {
		t.Fatalf("late receiver KeyFor(%d): %v", i, err)
	}
	if _, err := late.KeyFor(4); !errors.Is(err, ErrBeforeChainStart) {
		t.Fatalf("late receiver reading earlier message: got %v, want ErrBeforeChainStart", err)
	}
}

// TestRatchetForwardSecrecy checks concretely that after message keys are
// used, the chain's current (serialised) state can neither produce them nor
// contains them or the chain keys that derived them.
func TestRatchetForwardSecrecy(t *testing.T) {
	const n = 6
	ck := RandomKey()
	s := NewSendingChain(ck, 0)
	r, err := NewReceivingChain(ck, 0)
	if err != nil {
		t.Fatal(err)
	}
	var chainKeys, msgKeys [][KeySize]byte
	for range n {
		_, c := s.Share()
		chainKeys = append(chainKeys, c)
		_, k := s.Next()
		msgKeys = append(msgKeys, k)
	}
	// Deliver 0, 1, 2, then 5 (skipping 3, 4), then 3. Index 4's key stays
	// kept; everything else was used.
	for _, i := range []uint64{0, 1, 2, 5, 3} {
		if _, err := r.KeyFor(i); err != nil {
			t.Fatalf("KeyFor(%d): %v", i, err)
		}
	}
	rstate, _ := r.MarshalBinary()
	sstate, _ := s.MarshalBinary()
	for i := range n {
		if i != 4 && bytes.Contains(rstate, msgKeys[i][:]) {
			t.Errorf("receiver state contains used message key %d", i)
		}
		if bytes.Contains(rstate, chainKeys[i][:]) {
			t.Errorf("receiver state contains old chain key %d", i)
		}
		if bytes.Contains(sstate, msgKeys[i][:]) || bytes.Contains(sstate, chainKeys[i][:]) {
			t.Errorf("sender state contains key material of message %d", i)
		}
	}
	if !bytes.Contains(rstate, msgKeys[4][:]) {
		t.Fatal("kept key 4 missing from state: the test would prove nothing")
	}
	var restored ReceivingChain
	if err := restored.UnmarshalBinary(rstate); err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{0, 1, 2, 3, 5} {
		if k, err := restored.KeyFor(i); err == nil || k == msgKeys[i] {
			t.Errorf("restored state produced used key %d (err %v)", i, err)
		}
	}
	// Nor can it be walked forward into an old key.
	for range 3 {
		i := restored.Next()
		k, err := restored.KeyFor(i)
		if err != nil {
			t.Fatal(err)
		}
		for j, old := range msgKeys {
			if k == old && uint64(j) != i {
				t.Fatalf("advancing reproduced old key %d", j)
			}
		}
	}
}

func TestRatchetUnmarshalRejects(t *testing.T) {
	s, r := newChains(t, 3, WithWindow(8))
	sendN(t, s, 10)
	for _, i := range []uint64{6, 4} {
		if _, err := r.KeyFor(i); err != nil {
			t.Fatal(err)
		}
	}
	good, _ := r.MarshalBinary() // window 8, start 3, next 7, kept {3, 5}
	set := func(off int, b ...byte) []byte {
		c := bytes.Clone(good)
		copy(c[off:], b)
		return c
	}
	tests := map[string][]byte{
		"empty":               nil,
		"short header":        good[:receivingHeadSize-1],
		"truncated entry":     good[:len(good)-1],
		"trailing byte":       append(bytes.Clone(good), 0),
		"wrong tag":           set(0, 'S'),
		"wrong version":       set(1, 9),
		"zero window":         set(2, 0, 0, 0, 0),
		"huge window":         set(2, 0xff, 0xff, 0xff, 0xff),
		"start after next":    set(6, 0, 0, 0, 0, 0, 0, 0, 8),
		"count over window":   set(54, 0, 0, 0, 9),
		"count mismatch":      set(54, 0, 0, 0, 3),
		"kept index at next":  set(receivingHeadSize+skippedEntrySize, 0, 0, 0, 0, 0, 0, 0, 7),
		"kept index unsorted": set(receivingHeadSize, 0, 0, 0, 0, 0, 0, 0, 5),
		"kept before start":   set(receivingHeadSize, 0, 0, 0, 0, 0, 0, 0, 2),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			var c ReceivingChain
			if err := c.UnmarshalBinary(in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	var c ReceivingChain
	if err := c.UnmarshalBinary(good); err != nil {
		t.Fatalf("good state rejected: %v", err)
	}
	var sc SendingChain
	for _, in := range [][]byte{nil, good, make([]byte, sendingChainSize)} {
		if err := sc.UnmarshalBinary(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("sending chain unmarshal of %d bytes: got %v", len(in), err)
		}
	}
}

func TestWithWindowRange(t *testing.T) {
	for _, n := range []int{-1, 0, MaxRatchetWindow + 1} {
		if _, err := NewReceivingChain(RandomKey(), 0, WithWindow(n)); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("window %d: got %v, want ErrInvalidOption", n, err)
		}
	}
	for _, n := range []int{1, MaxRatchetWindow} {
		if _, err := NewReceivingChain(RandomKey(), 0, WithWindow(n)); err != nil {
			t.Errorf("window %d: %v", n, err)
		}
	}
}

func TestRatchetConcurrent(t *testing.T) {
	s, r := newChains(t, 0)
	const workers, per = 8, 100
	var mu sync.Mutex
	keys := map[uint64][KeySize]byte{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range per {
				i, k := s.Next()
				mu.Lock()
				keys[i] = k
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(keys) != workers*per {
		t.Fatalf("%d distinct indices, want %d", len(keys), workers*per)
	}
	// Receive concurrently in a window-friendly order: each worker takes a
	// stripe of indices.
	errs := make(chan error, workers*per)
	for w := range workers {
		wg.Go(func() {
			for i := uint64(w); i < workers*per; i += workers {
				k, err := r.KeyFor(i)
				if err != nil {
					errs <- err
					continue
				}
				if k != keys[i] {
					errs <- errors.New("key mismatch")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
