package log

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
)

// withLazyIndexMin sets the size from which Open reads the index in the
// background.
func withLazyIndexMin(n int) Option {
	return func(o *options) error { o.lazyIndexMin = n; return nil }
}

// heldIndexKV holds every query of the index until release is closed.
type heldIndexKV struct {
	*MemKV
	orderPrefix []byte
	release     chan struct{}
}

func (k *heldIndexKV) Query(ctx context.Context, q KVQuery) iter.Seq2[KVPair, error] {
	if bytes.Equal(q.Prefix, k.orderPrefix) {
		<-k.release
	}
	return k.MemKV.Query(ctx, q)
}

// A large log opens with its heads and count, before its index is read:
// Heads and Len answer at once, everything else waits for the index, and
// a log whose index turns out corrupt refuses writes with the reason.
func TestLargeLogOpensBeforeItsIndexIsRead(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		corrupt bool
	}{
		{"index read after Open", false},
		{"corrupt index found after Open", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplica(t, 1, nil)
			var want []*Entry
			for range 20 {
				want = append(want, mustAppend(t, r.log, "entry"))
			}
			heads := r.log.Heads()
			if err := r.log.Close(); err != nil {
				t.Fatal(err)
			}
			tmp := &Log{opts: defaultOptions()}
			kv := &heldIndexKV{MemKV: r.kv, orderPrefix: tmp.key(tagOrder), release: make(chan struct{})}
			if tc.corrupt {
				if err := r.kv.Put(ctx, append(tmp.key(tagOrder), 1, 2, 3), nil); err != nil {
					t.Fatal(err)
				}
			}
			l, err := Open(ctx, testLogID, r.blocks, kv, NewKeySigner(r.key), writer1(t), withLazyIndexMin(10))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if got := l.Heads(); !slices.EqualFunc(got, heads, cid.Cid.Equals) || l.Len() != len(want) {
				t.Fatalf("while the index is read: %d heads, Len %d; want %d heads, %d", len(got), l.Len(), len(heads), len(want))
			}
			close(kv.release)
			if tc.corrupt {
				if _, err := l.Append(ctx, []byte("more")); !errors.Is(err, ErrClosed) {
					t.Fatalf("append to a log whose index is corrupt: %v, want ErrClosed", err)
				}
				return
			}
			if got := cids(collect(t, l.Entries(ctx))); !slices.EqualFunc(got, cids(want), cid.Cid.Equals) {
				t.Fatalf("the log lists %d entries, want %d", len(got), len(want))
			}
			e := mustAppend(t, l, "after")
			if l.Len() != len(want)+1 || !slices.ContainsFunc(l.Heads(), e.CID().Equals) {
				t.Fatalf("after an append: Len %d, heads %v", l.Len(), l.Heads())
			}
		})
	}
}
