package log

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"
)

func TestOpenArguments(t *testing.T) {
	ctx := context.Background()
	blocks, kv := NewMemBlockStore(), NewMemKV()
	access := AllowWriters()
	tests := []struct {
		name   string
		id     string
		blocks BlockStore
		kv     KV
		access AccessController
		opts   []Option
	}{
		{"empty id", "", blocks, kv, access, nil},
		{"id too long", string(make([]byte, MaxIDLength+1)), blocks, kv, access, nil},
		{"nil blocks", "x", nil, kv, access, nil},
		{"nil kv", "x", blocks, nil, access, nil},
		{"nil access", "x", blocks, kv, nil, nil},
		{"zero entry size", "x", blocks, kv, access, []Option{WithMaxEntrySize(0)}},
		{"negative parallelism", "x", blocks, kv, access, []Option{WithJoinParallelism(-1)}},
		{"zero clock jump", "x", blocks, kv, access, []Option{WithMaxClockJump(0)}},
		{"nil logger", "x", blocks, kv, access, []Option{WithLogger(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(ctx, tt.id, tt.blocks, tt.kv, nil, tt.access, tt.opts...)
			if err == nil {
				t.Fatal("Open succeeded, want an error")
			}
			if len(tt.opts) > 0 && !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("Open = %v, want ErrInvalidOption", err)
			}
		})
	}
	t.Run("kv of another log", func(t *testing.T) {
		kv := NewMemKV()
		if _, err := Open(ctx, "one", blocks, kv, nil, access); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, "two", blocks, kv, nil, access); !errors.Is(err, ErrWrongLog) {
			t.Fatalf("Open = %v, want ErrWrongLog", err)
		}
		if _, err := Open(ctx, "two", blocks, kv, nil, access, WithKeyPrefix([]byte("two/"))); err != nil {
			t.Fatalf("Open with its own prefix: %v", err)
		}
	})
}

func TestAppendClockAndLinks(t *testing.T) {
	for _, k := range []int{1, 4, DefaultRefsEvery} {
		t.Run(fmt.Sprintf("refs every %d", k), func(t *testing.T) { testAppendClockAndLinks(t, k) })
	}
}

func testAppendClockAndLinks(t *testing.T, k int) {
	r := newReplica(t, 1, nil, WithRefsEvery(k))
	var es []*Entry
	withRefs := 0
	for i := range 100 {
		es = append(es, mustAppend(t, r.log, fmt.Sprint(i)))
	}
	for i, e := range es {
		if e.Time != uint64(i+1) {
			t.Errorf("entry %d time %d, want %d", i, e.Time, i+1)
		}
		if i > 0 && (len(e.Next) != 1 || !e.Next[0].Equals(es[i-1].CID())) {
			t.Errorf("entry %d next %v, want [%s]", i, e.Next, es[i-1].CID())
		}
		var wantRefs []cid.Cid
		for d := k; i%k == 0 && len(wantRefs) < DefaultAppendRefs && d <= i; d *= 2 {
			if d > 1 {
				wantRefs = append(wantRefs, es[i-d].CID())
			}
		}
		if len(wantRefs) > 0 {
			withRefs++
		}
		slices.SortFunc(wantRefs, compareCID)
		if !slices.EqualFunc(e.Refs, wantRefs, cid.Cid.Equals) {
			t.Errorf("entry %d refs %v, want %v", i, e.Refs, wantRefs)
		}
	}
	if withRefs == 0 {
		t.Fatal("no entry carries refs: the test proves nothing")
	}
	if h := r.log.Heads(); len(h) != 1 || !h[0].Equals(es[99].CID()) {
		t.Fatalf("heads %v, want the last entry", h)
	}
}

func TestAppendChecks(t *testing.T) {
	ctx := context.Background()
	t.Run("read-only", func(t *testing.T) {
		l, err := Open(ctx, "x", NewMemBlockStore(), NewMemKV(), nil, AllowWriters())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, []byte("x")); !errors.Is(err, ErrReadOnly) {
			t.Fatalf("Append = %v, want ErrReadOnly", err)
		}
	})
	t.Run("not allowed", func(t *testing.T) {
		r := newReplica(t, 1, AllowWriters(testKey(t, 2).Public().(ed25519.PublicKey)))
		if _, err := r.log.Append(ctx, []byte("x")); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("Append = %v, want ErrNotAllowed", err)
		}
		if r.log.Len() != 0 || r.blocks.Len() != 0 {
			t.Fatal("refused entry was stored")
		}
	})
	t.Run("too large", func(t *testing.T) {
		r := newReplica(t, 1, nil, WithMaxEntrySize(1000))
		if _, err := r.log.Append(ctx, make([]byte, 1000)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Append = %v, want ErrTooLarge", err)
		}
		mustAppend(t, r.log, "small")
	})
	t.Run("payload copied", func(t *testing.T) {
		r := newReplica(t, 1, nil)
		p := []byte("original")
		e, err := r.log.Append(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		copy(p, "mutated!")
		if string(e.Payload) != "original" {
			t.Fatalf("entry payload %q changed with the caller's slice", e.Payload)
		}
		if err := e.VerifySignature(); err != nil {
			t.Fatal(err)
		}
		got, err := r.log.Get(ctx, e.CID())
		if err != nil || string(got.Payload) != "original" {
			t.Fatalf("stored payload %q, err %v", got.Payload, err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		r := newReplica(t, 1, nil)
		r.log.Close()
		if _, err := r.log.Append(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append = %v, want ErrClosed", err)
		}
		if _, err := r.log.Join(ctx, nil, "p"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Join = %v, want ErrClosed", err)
		}
	})
	t.Run("next fan-in capped", func(t *testing.T) {
		// Five concurrent writers, appender keeps at most 2 next links.
		a := newReplica(t, 1, nil, WithMaxNext(2))
		for s := byte(2); s <= 6; s++ {
			w := newReplica(t, s, nil)
			mustAppend(t, w.log, "w")
			if _, err := a.log.Join(ctx, w.log.Heads(), "w", FetchFrom(w.blocks)); err != nil {
				t.Fatal(err)
			}
		}
		if len(a.log.Heads()) != 5 {
			t.Fatalf("heads %d, want 5", len(a.log.Heads()))
		}
		e := mustAppend(t, a.log, "merge")
		if len(e.Next) != 2 || len(a.log.Heads()) != 4 {
			t.Fatalf("next %d heads %d, want 2 and 4", len(e.Next), len(a.log.Heads()))
		}
	})
}

func TestEntriesIteration(t *testing.T) {
	ctx := context.Background()
	r := newReplica(t, 1, nil)
	var all []string
	var es []*Entry
	for i := range 12 {
		es = append(es, mustAppend(t, r.log, fmt.Sprint(i)))
		all = append(all, fmt.Sprint(i))
	}
	rev := slices.Clone(all)
	slices.Reverse(rev)
	tests := []struct {
		name string
		opts []IterOption
		want []string
	}{
		{"all", nil, all},
		{"reverse", []IterOption{Reverse()}, rev},
		{"since", []IterOption{Since(es[8].CID())}, all[9:]},
		{"until", []IterOption{Until(es[3].CID())}, all[:3]},
		{"since until", []IterOption{Since(es[2].CID()), Until(es[6].CID())}, all[3:6]},
		{"since until reverse", []IterOption{Since(es[2].CID()), Until(es[6].CID()), Reverse()}, []string{"5", "4", "3"}},
		{"reverse limit", []IterOption{Reverse(), Limit(2)}, []string{"11", "10"}},
		{"positions", []IterOption{SincePosition(4), UntilPosition(7)}, all[4:7]},
		{"position past end", []IterOption{SincePosition(40)}, nil},
		{"since last", []IterOption{Since(es[11].CID())}, nil},
		{"empty range", []IterOption{Since(es[6].CID()), Until(es[6].CID())}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := payloads(collect(t, r.log.Entries(ctx, tt.opts...))); !slices.Equal(got, tt.want) && len(got)+len(tt.want) > 0 {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("unknown since", func(t *testing.T) {
		other := craft(t, testKey(t, 1), "x", 1, nil, nil)
		var gotErr error
		for _, err := range r.log.Entries(ctx, Since(other.CID())) {
			gotErr = err
		}
		if !errors.Is(gotErr, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", gotErr)
		}
	})
	t.Run("position and get", func(t *testing.T) {
		p, err := r.log.Position(ctx, es[5].CID())
		if err != nil || p != 5 {
			t.Fatalf("Position = %d, %v; want 5", p, err)
		}
		e, err := r.log.Get(ctx, es[5].CID())
		if err != nil || string(e.Payload) != "5" {
			t.Fatalf("Get = %v, %v", e, err)
		}
		if _, err := r.log.Get(ctx, craft(t, testKey(t, 1), "x", 1, nil, nil).CID()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get unknown = %v, want ErrNotFound", err)
		}
	})
}

func TestReopenPersists(t *testing.T) {
	ctx := context.Background()
	a := newReplica(t, 1, nil)
	b := newReplica(t, 2, nil, WithKeyPrefix([]byte("group/messages/")))
	for i := range 30 {
		mustAppend(t, a.log, fmt.Sprint("a", i))
		if i%7 == 0 {
			mustAppend(t, b.log, fmt.Sprint("b", i))
		}
	}
	if _, err := b.log.Join(ctx, a.log.Heads(), "a", FetchFrom(a.blocks)); err != nil {
		t.Fatal(err)
	}
	want := payloads(collect(t, b.log.Entries(ctx)))
	wantHeads := b.log.Heads()
	b.log.Close()

	// Reopen from the KV alone: no block is read until iteration.
	counted := &countingBlocks{BlockStore: b.blocks}
	re, err := Open(ctx, testLogID, counted, b.kv, NewKeySigner(b.key), AllowWriters(
		testKey(t, 1).Public().(ed25519.PublicKey), testKey(t, 2).Public().(ed25519.PublicKey)),
		WithKeyPrefix([]byte("group/messages/")))
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	if counted.gets.Load() != 0 {
		t.Fatalf("Open read %d blocks, want 0", counted.gets.Load())
	}
	if re.Len() != len(want) {
		t.Fatalf("reopened Len %d, want %d", re.Len(), len(want))
	}
	if !slices.EqualFunc(re.Heads(), wantHeads, cid.Cid.Equals) {
		t.Fatalf("reopened heads %v, want %v", re.Heads(), wantHeads)
	}
	if got := payloads(collect(t, re.Entries(ctx))); !slices.Equal(got, want) {
		t.Fatalf("reopened order %v, want %v", got, want)
	}
	e := mustAppend(t, re, "after reopen")
	if len(e.Next) != len(wantHeads) {
		t.Fatalf("append after reopen: next %v, want the %d old heads", e.Next, len(wantHeads))
	}
	t.Run("corrupt count", func(t *testing.T) {
		if err := b.kv.Put(ctx, append([]byte("group/messages/"), tagCount), []byte{0, 0, 0, 0, 0, 0, 0, 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, testLogID, b.blocks, b.kv, nil, AllowWriters(), WithKeyPrefix([]byte("group/messages/"))); err == nil {
			t.Fatal("Open with a wrong count succeeded")
		}
	})
}

func TestSubscribe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newReplica(t, 1, nil)
	b := newReplica(t, 2, nil)
	sub := b.log.Subscribe(ctx)
	mustAppend(t, b.log, "b0")
	for i := range 5 {
		mustAppend(t, a.log, fmt.Sprint("a", i))
	}
	res, err := b.log.Join(ctx, a.log.Heads(), "a", FetchFrom(a.blocks))
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b.log, "b1")
	want := append(append([]string{"b0"}, payloads(res.Added)...), "b1")
	var got []string
	for len(got) < len(want) {
		got = append(got, string((<-sub).Payload))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("subscription order %v, want %v", got, want)
	}
	if !slices.IsSortedFunc(res.Added, func(x, y *Entry) int { return compareOrderKeys(makeOrderKey(x), makeOrderKey(y)) }) {
		t.Fatal("join added entries not in total order")
	}
	cancel()
	for range sub { // drains and ends once the context is cancelled
	}
	t.Run("closed by Close", func(t *testing.T) {
		c := newReplica(t, 3, nil)
		s := c.log.Subscribe(context.Background())
		c.log.Close()
		for range s {
		}
		if _, ok := <-c.log.Subscribe(context.Background()); ok {
			t.Fatal("subscription on a closed log yielded")
		}
	})
}

// TestConcurrentAppendAndJoin runs appends and joins from several
// goroutines at once (meaningful under -race), then checks convergence.
func TestConcurrentAppendAndJoin(t *testing.T) {
	ctx := context.Background()
	reps := []*replica{newReplica(t, 1, nil), newReplica(t, 2, nil), newReplica(t, 3, nil)}
	sub := reps[0].log.Subscribe(ctx)
	done := make(chan error, len(reps))
	for i, r := range reps {
		go func() {
			for j := range 40 {
				if _, err := r.log.Append(ctx, []byte(fmt.Sprint(i, "-", j))); err != nil {
					done <- err
					return
				}
				src := reps[(i+1+j)%len(reps)]
				if _, err := r.log.Join(ctx, src.log.Heads(), "peer", FetchFrom(src.blocks)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range reps {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range reps {
		for _, src := range reps {
			if _, err := r.log.Join(ctx, src.log.Heads(), "final", FetchFrom(src.blocks)); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := cids(collect(t, reps[0].log.Entries(ctx)))
	if len(want) != 120 {
		t.Fatalf("%d entries, want 120", len(want))
	}
	for _, r := range reps[1:] {
		if got := cids(collect(t, r.log.Entries(ctx))); !slices.EqualFunc(got, want, cid.Cid.Equals) {
			t.Fatal("replicas differ")
		}
	}
	// The subscription saw every entry exactly once.
	seen := map[cid.Cid]bool{}
	for len(seen) < 120 {
		e := <-sub
		if seen[e.CID()] {
			t.Fatalf("entry %s delivered twice", e.CID())
		}
		seen[e.CID()] = true
	}
}

// countingBlocks counts block reads.
type countingBlocks struct {
	BlockStore
	gets atomic.Int64
}

func (c *countingBlocks) Get(ctx context.Context, id cid.Cid) ([]byte, error) {
	c.gets.Add(1)
	return c.BlockStore.Get(ctx, id)
}

func (c *countingBlocks) GetMany(ctx context.Context, cids []cid.Cid) iter.Seq2[Block, error] {
	c.gets.Add(int64(len(cids)))
	return c.BlockStore.GetMany(ctx, cids)
}
