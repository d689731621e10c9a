package log

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
)

// countingGetter counts the GetMany calls of a block store.
type countingGetter struct {
	*MemBlockStore
	calls int
}

func (g *countingGetter) GetMany(ctx context.Context, cs []cid.Cid) iter.Seq2[Block, error] {
	g.calls++
	return g.MemBlockStore.GetMany(ctx, cs)
}

// GetRun reads an entry and those just before it in the total order, in
// one batched read, newest first; a CID the log lacks is ErrNotFound.
func TestGetRun(t *testing.T) {
	ctx := context.Background()
	r := newReplica(t, 1, nil)
	var all []*Entry
	for i := range 10 {
		all = append(all, mustAppend(t, r.log, fmt.Sprint(i)))
	}
	// Reopen over a counting block store.
	g := &countingGetter{MemBlockStore: r.blocks}
	l, err := Open(ctx, testLogID, g, r.kv, nil, AllowWriters(testKey(t, 1).Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tests := []struct {
		name string
		at   int // index in all
		n    int
		want []int // indices in all, newest first
	}{
		{"newest, three before", 9, 3, []int{9, 8, 7, 6}},
		{"middle, none before", 5, 0, []int{5}},
		{"near the start", 1, 5, []int{1, 0}},
		{"negative n", 4, -1, []int{4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := g.calls
			got, err := l.GetRun(ctx, all[tc.at].CID(), tc.n)
			if err != nil {
				t.Fatal(err)
			}
			var want []cid.Cid
			for _, i := range tc.want {
				want = append(want, all[i].CID())
			}
			if !slices.EqualFunc(cids(got), want, cid.Cid.Equals) {
				t.Fatalf("run %v, want %v", payloads(got), tc.want)
			}
			if g.calls-before != 1 {
				t.Fatalf("%d block reads, want 1", g.calls-before)
			}
		})
	}
	t.Run("not in the log", func(t *testing.T) {
		stranger := craft(t, testKey(t, 3), "x", 1, nil, nil)
		if _, err := l.GetRun(ctx, stranger.CID(), 4); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetRun of an unknown cid = %v, want ErrNotFound", err)
		}
	})
}

// puttingStore counts Put and PutMany calls.
type puttingStore struct {
	*MemBlockStore
	puts, putManys int
}

func (s *puttingStore) Put(ctx context.Context, c cid.Cid, data []byte) error {
	s.puts++
	return s.MemBlockStore.Put(ctx, c, data)
}

func (s *puttingStore) PutMany(ctx context.Context, blocks []Block) error {
	s.putManys++
	for _, b := range blocks {
		if err := s.MemBlockStore.Put(ctx, b.CID, b.Data); err != nil {
			return err
		}
	}
	return nil
}

// A join stores what it adds in one PutMany when the block store has it,
// and answers Has from memory, every entry it added included.
func TestJoinPutsBlocksTogether(t *testing.T) {
	ctx := context.Background()
	w := newReplica(t, 1, nil)
	for i := range 20 {
		mustAppend(t, w.log, fmt.Sprint(i))
	}
	s := &puttingStore{MemBlockStore: NewMemBlockStore()}
	l, err := Open(ctx, testLogID, s, NewMemKV(), nil, AllowWriters(testKey(t, 1).Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res, err := l.Join(ctx, w.log.Heads(), "w", FetchFrom(w.blocks))
	if err != nil || len(res.Added) != 20 {
		t.Fatalf("join added %d: %v", len(res.Added), err)
	}
	if s.putManys != 1 || s.puts != 0 {
		t.Fatalf("%d PutMany and %d Put calls, want 1 and 0", s.putManys, s.puts)
	}
	for _, e := range res.Added {
		if ok, err := l.Has(ctx, e.CID()); !ok || err != nil {
			t.Fatalf("Has(%s) = %v, %v after the join", e.CID(), ok, err)
		}
		if ok, _ := s.Has(ctx, e.CID()); !ok {
			t.Fatalf("block %s not stored", e.CID())
		}
	}
}
