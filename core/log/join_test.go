package log

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
)

// getterFunc adapts a function to BlockGetter.
type getterFunc func(ctx context.Context, cids []cid.Cid) iter.Seq2[Block, error]

func (f getterFunc) GetMany(ctx context.Context, cids []cid.Cid) iter.Seq2[Block, error] {
	return f(ctx, cids)
}

// multiGetter answers from the first store that has the block.
func multiGetter(stores ...*MemBlockStore) BlockGetter {
	return getterFunc(func(ctx context.Context, cids []cid.Cid) iter.Seq2[Block, error] {
		return func(yield func(Block, error) bool) {
			for _, c := range cids {
				var data []byte
				err := fmt.Errorf("block %s: %w", c, ErrNotFound)
				for _, s := range stores {
					if d, gerr := s.Get(ctx, c); gerr == nil {
						data, err = d, nil
						break
					}
				}
				if !yield(Block{CID: c, Data: data}, err) {
					return
				}
			}
		}
	})
}

// lyingGetter serves substitute bytes for some CIDs.
func lyingGetter(inner BlockGetter, lies map[cid.Cid][]byte) BlockGetter {
	return getterFunc(func(ctx context.Context, cids []cid.Cid) iter.Seq2[Block, error] {
		return func(yield func(Block, error) bool) {
			for b, err := range inner.GetMany(ctx, cids) {
				if data, ok := lies[b.CID]; ok {
					b, err = Block{CID: b.CID, Data: data}, nil
				}
				if !yield(b, err) {
					return
				}
			}
		}
	})
}

// flakyGetter drops each block for which drop returns true.
func flakyGetter(inner BlockGetter, drop func() bool) BlockGetter {
	return getterFunc(func(ctx context.Context, cids []cid.Cid) iter.Seq2[Block, error] {
		return func(yield func(Block, error) bool) {
			for b, err := range inner.GetMany(ctx, cids) {
				if err == nil && drop() {
					b, err = Block{CID: b.CID}, fmt.Errorf("dropped: %w", ErrNotFound)
				}
				if !yield(b, err) {
					return
				}
			}
		}
	})
}

// mallory is a peer that crafts entries: its block store holds whatever it
// made, and honest blocks it copied.
type mallory struct {
	blocks *MemBlockStore
}

func newMallory(tb testing.TB, honest ...*MemBlockStore) *mallory {
	tb.Helper()
	m := &mallory{blocks: NewMemBlockStore()}
	for _, h := range honest {
		h.mu.RLock()
		for k, v := range h.blocks {
			c, err := cid.Cast([]byte(k))
			if err != nil {
				tb.Fatal(err)
			}
			m.blocks.blocks[c.KeyString()] = v
		}
		h.mu.RUnlock()
	}
	return m
}

func (m *mallory) add(tb testing.TB, es ...*Entry) {
	tb.Helper()
	putAll(tb, m.blocks, es...)
}

// attackSetup: honest writer a with a 3-entry chain; a victim replica v.
type attackSetup struct {
	a, v  *replica
	chain []*Entry
	m     *mallory
}

func newAttack(tb testing.TB, victimOpts ...Option) *attackSetup {
	tb.Helper()
	s := &attackSetup{a: newReplica(tb, 1, nil), v: newReplica(tb, 2, nil, victimOpts...)}
	for i := range 3 {
		s.chain = append(s.chain, mustAppend(tb, s.a.log, fmt.Sprint("good", i)))
	}
	s.m = newMallory(tb, s.a.blocks)
	return s
}

// join makes the victim join heads fetched from mallory's store.
func (s *attackSetup) join(tb testing.TB, heads ...cid.Cid) (JoinResult, error) {
	tb.Helper()
	return s.v.log.Join(context.Background(), heads, "mallory", FetchFrom(s.m.blocks))
}

// expectRejected checks the join outcome: each bad CID rejected with its
// reason and attributed to mallory, the good entries kept, the bad absent.
func expectRejected(tb testing.TB, s *attackSetup, res JoinResult, err error, good []*Entry, bad map[cid.Cid]error) {
	tb.Helper()
	var je *JoinError
	if !errors.As(err, &je) {
		tb.Fatalf("Join error = %v, want a *JoinError", err)
	}
	if je.From != "mallory" {
		tb.Fatalf("JoinError.From = %q", je.From)
	}
	for c, reason := range bad {
		r := rejectionFor(tb, res, c)
		if r.From != "mallory" || !errors.Is(r, reason) {
			tb.Fatalf("rejection of %s = %v (from %q), want reason %v", c, r.Err, r.From, reason)
		}
		if !errors.Is(err, reason) {
			tb.Fatalf("errors.Is(join error, %v) is false: %v", reason, err)
		}
		if ok, _ := s.v.log.Has(context.Background(), c); ok {
			tb.Fatalf("rejected entry %s is in the log", c)
		}
		if ok, _ := s.v.blocks.Has(context.Background(), c); ok {
			tb.Fatalf("rejected entry %s was stored", c)
		}
	}
	for _, e := range good {
		if ok, _ := s.v.log.Has(context.Background(), e.CID()); !ok {
			tb.Fatalf("good entry %q (%s) was not kept", e.Payload, e.CID())
		}
	}
	if len(res.Rejected) != len(bad) {
		tb.Fatalf("rejected %d entries, want %d: %v", len(res.Rejected), len(bad), res.Rejected)
	}
}

func TestJoinRejectsForgedSignature(t *testing.T) {
	s := newAttack(t)
	writerA := testKey(t, 1).Public().(ed25519.PublicKey)
	// Signed by key 9 but claiming writer a (an allowed member).
	forged := craft(t, testKey(t, 9), "forged", 4, []cid.Cid{s.chain[2].CID()}, nil)
	forged.Writer = writerA
	reencode(forged)
	// A validly signed child of the forged entry.
	child := craft(t, testKey(t, 1), "child", 5, []cid.Cid{forged.CID()}, nil)
	// An independent good entry by a.
	side := craft(t, testKey(t, 1), "side", 4, []cid.Cid{s.chain[2].CID()}, nil)
	s.m.add(t, forged, child, side)
	res, err := s.join(t, child.CID(), side.CID())
	expectRejected(t, s, res, err, append(slices.Clone(s.chain), side),
		map[cid.Cid]error{forged.CID(): ErrBadSignature, child.CID(): ErrBadAncestor})
}

func TestJoinRejectsNonMemberWriter(t *testing.T) {
	s := newAttack(t)
	outsider := craft(t, testKey(t, 9), "outsider", 4, []cid.Cid{s.chain[2].CID()}, nil)
	child := craft(t, testKey(t, 1), "child", 5, []cid.Cid{outsider.CID()}, nil)
	s.m.add(t, outsider, child)
	res, err := s.join(t, child.CID(), s.chain[2].CID())
	expectRejected(t, s, res, err, s.chain,
		map[cid.Cid]error{outsider.CID(): ErrNotAllowed, child.CID(): ErrBadAncestor})
}

// epochAccess allows writer 3 only up to time 2: an access check that
// depends on the entry's clock, as the group layer's epochs do.
type epochAccess struct{ removed ed25519.PublicKey }

func (a epochAccess) CanWrite(_ context.Context, e *Entry) error {
	if a.removed.Equal(e.Writer) && e.Time > 2 {
		return errors.New("writer removed at time 2")
	}
	return nil
}

func TestJoinAccessCheckSeesCausalOrder(t *testing.T) {
	ctx := context.Background()
	var seen []uint64
	recorder := accessFunc(func(_ context.Context, e *Entry) error {
		seen = append(seen, e.Time)
		return epochAccess{removed: testKey(t, 3).Public().(ed25519.PublicKey)}.CanWrite(ctx, e)
	})
	w := newReplica(t, 3, nil)
	v := newReplica(t, 2, recorder)
	var es []*Entry
	for i := range 4 {
		es = append(es, mustAppend(t, w.log, fmt.Sprint(i)))
	}
	res, err := v.log.Join(ctx, w.log.Heads(), "w", FetchFrom(w.blocks))
	if !errors.Is(err, ErrNotAllowed) || len(res.Added) != 2 {
		t.Fatalf("join: added %d, err %v; want 2 added and ErrNotAllowed", len(res.Added), err)
	}
	if !slices.IsSorted(seen) {
		t.Fatalf("CanWrite saw times %v, want causal (ascending) order", seen)
	}
	if r := rejectionFor(t, res, es[3].CID()); !errors.Is(r, ErrBadAncestor) {
		t.Fatalf("entry after the rejected one: %v, want ErrBadAncestor", r)
	}
}

type accessFunc func(context.Context, *Entry) error

func (f accessFunc) CanWrite(ctx context.Context, e *Entry) error { return f(ctx, e) }

func TestJoinRejectsOversizedEntry(t *testing.T) {
	tests := []struct {
		name   string
		opts   []Option
		entry  func(s *attackSetup) *Entry
		reason error
	}{
		{"bytes", []Option{WithMaxEntrySize(1000)}, func(s *attackSetup) *Entry {
			return craft(t, testKey(t, 1), string(make([]byte, 1000)), 4, []cid.Cid{s.chain[2].CID()}, nil)
		}, ErrTooLarge},
		{"next fan-in", []Option{WithMaxNext(2)}, func(s *attackSetup) *Entry {
			return craft(t, testKey(t, 1), "wide", 4, []cid.Cid{s.chain[0].CID(), s.chain[1].CID(), s.chain[2].CID()}, nil)
		}, ErrTooLarge},
		{"refs", []Option{WithMaxRefs(1)}, func(s *attackSetup) *Entry {
			return craft(t, testKey(t, 1), "refs", 4, []cid.Cid{s.chain[2].CID()}, func(e *Entry) {
				e.Refs = []cid.Cid{s.chain[0].CID(), s.chain[1].CID()}
				slices.SortFunc(e.Refs, compareCID)
			})
		}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAttack(t, tt.opts...)
			big := tt.entry(s)
			s.m.add(t, big)
			res, err := s.join(t, big.CID(), s.chain[2].CID())
			expectRejected(t, s, res, err, s.chain, map[cid.Cid]error{big.CID(): tt.reason})
		})
	}
}

func TestJoinReportsMissingBlock(t *testing.T) {
	s := newAttack(t)
	ghost := craft(t, testKey(t, 1), "never served", 4, []cid.Cid{s.chain[2].CID()}, nil)
	child := craft(t, testKey(t, 1), "child", 5, []cid.Cid{ghost.CID()}, nil)
	s.m.add(t, child) // ghost is not served
	res, err := s.join(t, child.CID(), s.chain[2].CID())
	expectRejected(t, s, res, err, s.chain,
		map[cid.Cid]error{ghost.CID(): ErrMissingBlock, child.CID(): ErrBadAncestor})
	// Once the block can be had, the same join succeeds.
	s.m.add(t, ghost)
	res, err = s.join(t, child.CID())
	if err != nil || len(res.Added) != 2 {
		t.Fatalf("retry: added %d, err %v; want 2, nil", len(res.Added), err)
	}
}

func TestJoinRejectsCycle(t *testing.T) {
	t.Run("served under a cid it does not hash to", func(t *testing.T) {
		// A cycle needs a block whose bytes name its own descendant; the
		// only way to serve one is under a CID it does not hash to.
		s := newAttack(t)
		x := craft(t, testKey(t, 1), "x", 4, []cid.Cid{s.chain[2].CID()}, nil)
		y := craft(t, testKey(t, 1), "y", 5, []cid.Cid{x.CID()}, nil)
		loop := craft(t, testKey(t, 1), "loop", 6, []cid.Cid{y.CID()}, nil)
		s.m.add(t, y)
		res, err := s.v.log.Join(context.Background(), []cid.Cid{y.CID()}, "mallory",
			FetchFrom(lyingGetter(s.m.blocks, map[cid.Cid][]byte{x.CID(): loop.Bytes()})))
		expectRejected(t, s, res, err, nil,
			map[cid.Cid]error{x.CID(): ErrHashMismatch, y.CID(): ErrBadAncestor})
	})
	t.Run("graph with a cycle", func(t *testing.T) {
		// Validation itself, fed a graph a broken hash function could give.
		v := newReplica(t, 2, nil)
		k := testKey(t, 1)
		a := craft(t, k, "a", 1, nil, nil)
		b := craft(t, k, "b", 2, nil, nil)
		c := craft(t, k, "c", 3, nil, nil)
		a.Next, b.Next, c.Next = []cid.Cid{c.CID()}, []cid.Cid{a.CID()}, []cid.Cid{b.CID()}
		d := craft(t, k, "d", 4, []cid.Cid{c.CID()}, nil)
		good := craft(t, k, "good", 1, nil, nil)
		nodes := map[string]*joinNode{}
		for _, e := range []*Entry{a, b, c, d, good} {
			nodes[e.CID().KeyString()] = &joinNode{c: e.CID(), e: e, fetched: true}
		}
		v.log.mu.Lock()
		accepted, rejected, err := v.log.validate(context.Background(), nodes, "mallory")
		v.log.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if len(accepted) != 1 || !accepted[0].CID().Equals(good.CID()) {
			t.Fatalf("accepted %v, want only the good entry", accepted)
		}
		if len(rejected) != 4 {
			t.Fatalf("rejected %v, want a, b, c and d", rejected)
		}
		var cycle int
		for _, r := range rejected {
			if errors.Is(r, ErrCycle) {
				cycle++
			} else if !errors.Is(r, ErrBadAncestor) {
				t.Fatalf("rejection %v, want ErrCycle or ErrBadAncestor", r)
			}
		}
		if cycle == 0 {
			t.Fatal("no rejection names the cycle")
		}
	})
}

func TestJoinRejectsTamperedEntry(t *testing.T) {
	s := newAttack(t)
	good := craft(t, testKey(t, 1), "original", 4, []cid.Cid{s.chain[2].CID()}, nil)
	tampered := craft(t, testKey(t, 1), "original", 4, []cid.Cid{s.chain[2].CID()}, nil)
	tampered.Payload = []byte("tampered")
	reencode(tampered)
	goodSibling := craft(t, testKey(t, 1), "sibling", 4, []cid.Cid{s.chain[2].CID()}, nil)
	s.m.add(t, tampered, goodSibling)
	res, err := s.v.log.Join(context.Background(), []cid.Cid{tampered.CID(), good.CID(), goodSibling.CID()}, "mallory",
		FetchFrom(lyingGetter(s.m.blocks, map[cid.Cid][]byte{good.CID(): tampered.Bytes()})))
	expectRejected(t, s, res, err, append(slices.Clone(s.chain), goodSibling),
		map[cid.Cid]error{tampered.CID(): ErrBadSignature, good.CID(): ErrHashMismatch})
}

func TestJoinReplayIsNoOp(t *testing.T) {
	ctx := context.Background()
	a := newReplica(t, 1, nil)
	v := newReplica(t, 2, nil)
	var es []*Entry
	for i := range 5 {
		es = append(es, mustAppend(t, a.log, fmt.Sprint(i)))
	}
	if _, err := v.log.Join(ctx, a.log.Heads(), "a", FetchFrom(a.blocks)); err != nil {
		t.Fatal(err)
	}
	before := cids(collect(t, v.log.Entries(ctx)))
	sub := v.log.Subscribe(ctx)
	tests := []struct {
		name  string
		heads []cid.Cid
	}{
		{"same heads", a.log.Heads()},
		{"old entry", []cid.Cid{es[1].CID()}},
		{"every entry, twice", append(cids(es), cids(es)...)},
		{"no heads", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := v.log.Join(ctx, tt.heads, "a", FetchFrom(a.blocks))
			if err != nil || len(res.Added) != 0 || len(res.Rejected) != 0 {
				t.Fatalf("replay: added %d rejected %d err %v; want a no-op", len(res.Added), len(res.Rejected), err)
			}
			if got := cids(collect(t, v.log.Entries(ctx))); !slices.EqualFunc(got, before, cid.Cid.Equals) {
				t.Fatal("replay changed the log")
			}
		})
	}
	e := mustAppend(t, v.log, "marker")
	if got := <-sub; !got.CID().Equals(e.CID()) {
		t.Fatalf("subscription got %q before the marker: replay notified", got.Payload)
	}
}

func TestJoinRejectsBadClock(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		make func(s *attackSetup) *Entry
	}{
		{"time equal to next", nil, func(s *attackSetup) *Entry {
			return craft(t, testKey(t, 1), "same time", s.chain[2].Time, []cid.Cid{s.chain[2].CID()}, nil)
		}},
		{"time below next", nil, func(s *attackSetup) *Entry {
			return craft(t, testKey(t, 1), "past", 1, []cid.Cid{s.chain[2].CID()}, nil)
		}},
		{"zero time root", nil, func(s *attackSetup) *Entry {
			return craft(t, testKey(t, 1), "zero", 0, nil, nil)
		}},
		{"jump too far", []Option{WithMaxClockJump(10)}, func(s *attackSetup) *Entry {
			return craft(t, testKey(t, 1), "future", s.chain[2].Time+11, []cid.Cid{s.chain[2].CID()}, nil)
		}},
		{"max uint64 time", nil, func(s *attackSetup) *Entry {
			return craft(t, testKey(t, 1), "overflow", ^uint64(0), []cid.Cid{s.chain[2].CID()}, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAttack(t, tt.opts...)
			bad := tt.make(s)
			s.m.add(t, bad)
			res, err := s.join(t, bad.CID(), s.chain[2].CID())
			expectRejected(t, s, res, err, s.chain, map[cid.Cid]error{bad.CID(): ErrClock})
		})
	}
	t.Run("jump within limit", func(t *testing.T) {
		s := newAttack(t, WithMaxClockJump(10))
		ok := craft(t, testKey(t, 1), "ok", s.chain[2].Time+10, []cid.Cid{s.chain[2].CID()}, nil)
		s.m.add(t, ok)
		if _, err := s.join(t, ok.CID()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestJoinRejectsWrongLog(t *testing.T) {
	s := newAttack(t)
	foreign := craft(t, testKey(t, 1), "foreign", 4, []cid.Cid{s.chain[2].CID()}, func(e *Entry) { e.ID = "another-log" })
	s.m.add(t, foreign)
	res, err := s.join(t, foreign.CID(), s.chain[2].CID())
	expectRejected(t, s, res, err, s.chain, map[cid.Cid]error{foreign.CID(): ErrWrongLog})
}

func TestJoinLimit(t *testing.T) {
	ctx := context.Background()
	a := newReplica(t, 1, nil)
	for i := range 10 {
		mustAppend(t, a.log, fmt.Sprint(i))
	}
	v := newReplica(t, 2, nil, WithMaxJoinEntries(5))
	res, err := v.log.Join(ctx, a.log.Heads(), "a", FetchFrom(a.blocks))
	if !errors.Is(err, ErrJoinLimit) || len(res.Added) != 0 || len(res.Rejected) != 0 || v.log.Len() != 0 {
		t.Fatalf("join over the limit: added %d rejected %d err %v", len(res.Added), len(res.Rejected), err)
	}
	// Within the limit per join, the log catches up from the oldest side.
	es := collect(t, a.log.Entries(ctx))
	for _, e := range es {
		if _, err := v.log.Join(ctx, []cid.Cid{e.CID()}, "a", FetchFrom(a.blocks)); err != nil {
			t.Fatal(err)
		}
	}
	if v.log.Len() != 10 {
		t.Fatalf("Len %d after catch-up, want 10", v.log.Len())
	}
}

func TestJoinAbortsOnContext(t *testing.T) {
	a := newReplica(t, 1, nil)
	for i := range 5 {
		mustAppend(t, a.log, fmt.Sprint(i))
	}
	v := newReplica(t, 2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.log.Join(ctx, a.log.Heads(), "a", FetchFrom(a.blocks)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Join = %v, want context.Canceled", err)
	}
	if v.log.Len() != 0 {
		t.Fatal("cancelled join added entries")
	}
}

// TestConvergence: replicas append at random and join each other in random
// order, with duplicates, stale heads and lossy delivery; once everything is
// delivered, every replica holds the same entries in the same order.
func TestConvergence(t *testing.T) {
	seeds, steps := 12, 150
	if testing.Short() {
		seeds, steps = 3, 60
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
			n := 3 + rng.IntN(3)
			reps := make([]*replica, n)
			for i := range reps {
				reps[i] = newReplica(t, byte(i+1), nil, WithJoinParallelism(1+rng.IntN(8)))
			}
			ctx := context.Background()
			var staleHeads [][]cid.Cid
			appended := 0
			for step := range steps {
				r := reps[rng.IntN(n)]
				switch op := rng.IntN(10); {
				case op < 4:
					mustAppend(t, r.log, fmt.Sprintf("s%d-%d", seed, step))
					appended++
				default:
					src := reps[rng.IntN(n)]
					heads := src.log.Heads()
					staleHeads = append(staleHeads, heads)
					switch rng.IntN(4) {
					case 0: // stale heads seen earlier
						heads = staleHeads[rng.IntN(len(staleHeads))]
					case 1: // a subset, shuffled, with a duplicate
						heads = slices.Clone(heads)
						rng.Shuffle(len(heads), func(i, j int) { heads[i], heads[j] = heads[j], heads[i] })
						heads = append(heads[:rng.IntN(len(heads)+1)], heads...)
					}
					getter := BlockGetter(multiGetter(src.blocks))
					if rng.IntN(3) == 0 { // lossy delivery
						getter = flakyGetter(getter, func() bool { return rng.IntN(4) == 0 })
					}
					res, err := r.log.Join(ctx, heads, fmt.Sprint("peer", src), FetchFrom(getter))
					for _, rej := range res.Rejected {
						if !errors.Is(rej, ErrMissingBlock) && !errors.Is(rej, ErrBadAncestor) {
							t.Fatalf("step %d: honest entry rejected: %v", step, rej)
						}
					}
					if err != nil && len(res.Rejected) == 0 {
						t.Fatalf("step %d: join: %v", step, err)
					}
				}
			}
			// Deliver everything: every replica joins every other's heads.
			all := make([]*MemBlockStore, n)
			for i, r := range reps {
				all[i] = r.blocks
			}
			for _, r := range reps {
				for _, src := range reps {
					if _, err := r.log.Join(ctx, src.log.Heads(), "final", FetchFrom(multiGetter(all...))); err != nil {
						t.Fatalf("final join: %v", err)
					}
				}
			}
			want := cids(collect(t, reps[0].log.Entries(ctx)))
			if len(want) != appended {
				t.Fatalf("replica 0 has %d entries, %d were appended", len(want), appended)
			}
			for i, r := range reps[1:] {
				got := cids(collect(t, r.log.Entries(ctx)))
				if !slices.EqualFunc(got, want, cid.Cid.Equals) {
					t.Fatalf("replica %d order differs from replica 0", i+1)
				}
				if !slices.EqualFunc(r.log.Heads(), reps[0].log.Heads(), cid.Cid.Equals) {
					t.Fatalf("replica %d heads differ", i+1)
				}
			}
			// The order is the documented one: (time, writer, cid).
			es := collect(t, reps[0].log.Entries(ctx))
			if !slices.IsSortedFunc(es, func(a, b *Entry) int { return compareOrderKeys(makeOrderKey(a), makeOrderKey(b)) }) {
				t.Fatal("order is not (time, writer, cid)")
			}
		})
	}
}

func TestJoinByteLimit(t *testing.T) {
	ctx := context.Background()
	a := newReplica(t, 1, nil)
	for i := range 10 {
		mustAppend(t, a.log, string(make([]byte, 1000+i)))
	}
	v := newReplica(t, 2, nil, WithMaxJoinBytes(3000))
	res, err := v.log.Join(ctx, a.log.Heads(), "a", FetchFrom(a.blocks))
	if !errors.Is(err, ErrJoinLimit) || len(res.Added) >= 10 {
		t.Fatalf("join over the byte limit: added %d, err %v", len(res.Added), err)
	}
	// Entries whose ancestry was fetched completely entered; repeated joins
	// catch up (refs reach the old end of the log first).
	if len(res.Pending) == 0 {
		t.Fatal("limited join lists nothing pending")
	}
	for i := 0; v.log.Len() < 10; i++ {
		if i == 20 {
			t.Fatalf("no progress: %d entries after %d joins", v.log.Len(), i)
		}
		heads := res.Pending
		if len(heads) == 0 {
			heads = a.log.Heads()
		}
		if res, err = v.log.Join(ctx, heads, "a", FetchFrom(a.blocks)); err != nil && !errors.Is(err, ErrJoinLimit) {
			t.Fatal(err)
		}
	}
}

func TestJoinRejectsMalformedHeads(t *testing.T) {
	s := newAttack(t)
	rawCID := cid.NewCidV1(cid.Raw, s.chain[2].CID().Hash())
	res, err := s.join(t, cid.Undef, rawCID, s.chain[2].CID())
	expectRejected(t, s, res, err, s.chain, map[cid.Cid]error{cid.Undef: ErrMalformed, rawCID: ErrMalformed})
}
