package log

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
)

// lossyBlocks is a MemBlockStore whose puts can be held (put waits at
// gate) or refused (fail), and that counts the blocks put.
type lossyBlocks struct {
	*MemBlockStore
	mu   sync.Mutex
	gate chan struct{}
	fail bool
	puts int
}

func (b *lossyBlocks) Put(ctx context.Context, c cid.Cid, data []byte) error {
	b.mu.Lock()
	gate, fail := b.gate, b.fail
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return errors.New("network plugin restarting")
	}
	b.mu.Lock()
	b.puts++
	b.mu.Unlock()
	return b.MemBlockStore.Put(ctx, c, data)
}

func (b *lossyBlocks) set(f func(b *lossyBlocks)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
}

// kvBlockRecords counts the log's KV copies of blocks.
func kvBlockRecords(t testing.TB, kv KV) int {
	t.Helper()
	n := 0
	for _, err := range kv.Query(context.Background(), KVQuery{Prefix: []byte{tagBlock}, KeysOnly: true}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// With WithBlocksInKV an append is acknowledged after one synced KV batch
// that holds its block: a BlockStore that has not got the block (held,
// failing, or lost with its process) loses nothing. The log serves the
// block meanwhile, a reopened log places it again into whatever
// BlockStore it is given, and the KV copy goes once the block is placed.
func TestBlocksInKVSurviveALostBlockStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		hold func(b *lossyBlocks)
	}{
		{"block store holds the put", func(b *lossyBlocks) { b.gate = make(chan struct{}) }},
		{"block store refuses the put", func(b *lossyBlocks) { b.fail = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			kv := &gatedKV{MemKV: NewMemKV()}
			blocks := &lossyBlocks{MemBlockStore: NewMemBlockStore()}
			blocks.set(tc.hold)
			l, err := Open(ctx, testLogID, blocks, kv, NewKeySigner(testKey(t, 1)), writer1(t),
				WithSyncWrites(true), WithBlocksInKV(true))
			if err != nil {
				t.Fatal(err)
			}
			var acked []*Entry
			for i := range 5 {
				acked = append(acked, mustAppend(t, l, fmt.Sprintf("acknowledged %d", i)))
			}
			kv.set(func(k *gatedKV) {
				if k.batches != 5 || k.synced != 5 {
					t.Errorf("%d batches (%d synced) for 5 appends, want 5 synced", k.batches, k.synced)
				}
			})
			if blocks.Len() != 0 {
				t.Fatalf("the block store holds %d blocks, want none yet", blocks.Len())
			}
			for _, e := range acked {
				got, err := l.Get(ctx, e.CID())
				if err != nil || !got.CID().Equals(e.CID()) {
					t.Fatalf("get %s before it is placed: %v", e.CID(), err)
				}
			}
			if n := kvBlockRecords(t, kv); n != 5 {
				t.Fatalf("%d blocks in the kv, want 5", n)
			}
			// The process dies: its log is dropped without Close and
			// the block store it wrote to comes back empty.
			blocks.set(func(b *lossyBlocks) {
				if b.gate != nil {
					close(b.gate)
					b.gate = nil
				}
				b.fail = true
			})
			l.placer.stop()

			fresh := &lossyBlocks{MemBlockStore: NewMemBlockStore()}
			r, err := Open(ctx, testLogID, fresh, kv, NewKeySigner(testKey(t, 1)), writer1(t),
				WithSyncWrites(true), WithBlocksInKV(true))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := r.syncPlacement(); err != nil {
				t.Fatal(err)
			}
			for _, e := range acked {
				if ok, _ := fresh.Has(ctx, e.CID()); !ok {
					t.Fatalf("acknowledged entry %s not placed again after the restart", e.CID())
				}
			}
			if got := cids(collect(t, r.Entries(ctx))); !slices.EqualFunc(got, cids(acked), cid.Cid.Equals) {
				t.Fatalf("the reopened log lists %d entries, want the %d acknowledged", len(got), len(acked))
			}
			// The KV copies go with the next write.
			mustAppend(t, r, "next")
			if err := r.syncPlacement(); err != nil {
				t.Fatal(err)
			}
			if n := kvBlockRecords(t, kv); n != 1 {
				t.Fatalf("%d blocks left in the kv after the next write, want 1 (its own)", n)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if n := kvBlockRecords(t, kv); n != 0 {
				t.Fatalf("%d blocks left in the kv after Close, want none", n)
			}
		})
	}
}

// Concurrent appends still share one write with WithBlocksInKV, and the
// blocks reach the BlockStore in batches (PutMany) after the write.
func TestBlocksInKVGroupCommit(t *testing.T) {
	ctx := context.Background()
	kv := &gatedKV{MemKV: NewMemKV()}
	blocks := &lossyBlocks{MemBlockStore: NewMemBlockStore()}
	l, err := Open(ctx, testLogID, blocks, kv, NewKeySigner(testKey(t, 1)), writer1(t),
		WithSyncWrites(true), WithBlocksInKV(true))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	gate := make(chan struct{})
	kv.set(func(k *gatedKV) { k.gate, k.entered, k.batches, k.synced = gate, make(chan struct{}, 64), 0, 0 })
	const n = 16
	errs := make(chan error, n+1)
	go func() { _, err := l.Append(ctx, []byte("first")); errs <- err }()
	<-kv.entered
	for i := range n {
		go func() { _, err := l.Append(ctx, fmt.Appendf(nil, "concurrent %d", i)); errs <- err }()
	}
	waitFor(t, "every append staged", func() bool { return l.Len() == n+1 })
	kv.set(func(k *gatedKV) { k.gate = nil })
	close(gate)
	for range n + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	kv.set(func(k *gatedKV) {
		if k.batches != 2 || k.synced != 2 {
			t.Errorf("%d batches (%d synced) for %d appends, want 2", k.batches, k.synced, n+1)
		}
	})
	if err := l.syncPlacement(); err != nil {
		t.Fatal(err)
	}
	for _, e := range collect(t, l.Entries(ctx)) {
		if ok, _ := blocks.Has(ctx, e.CID()); !ok {
			t.Fatalf("entry %s never placed", e.CID())
		}
	}
}

// A join with WithBlocksInKV writes the joined blocks to the KV too, and
// places them: a replica that joined is as durable as one that wrote.
func TestBlocksInKVJoin(t *testing.T) {
	ctx := context.Background()
	a := newReplica(t, 1, nil)
	for i := range 3 {
		mustAppend(t, a.log, fmt.Sprintf("from a %d", i))
	}
	kv := NewMemKV()
	blocks := &lossyBlocks{MemBlockStore: NewMemBlockStore(), fail: true}
	b, err := Open(ctx, testLogID, blocks, kv, NewKeySigner(testKey(t, 2)), AllowWriters(testKey(t, 1).Public().(ed25519.PublicKey), testKey(t, 2).Public().(ed25519.PublicKey)),
		WithSyncWrites(true), WithBlocksInKV(true))
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Join(ctx, a.log.Heads(), "a", FetchFrom(a.blocks))
	if err != nil || len(res.Added) != 3 {
		t.Fatalf("join: %d added, %v", len(res.Added), err)
	}
	if n := kvBlockRecords(t, kv); n != 3 {
		t.Fatalf("%d joined blocks in the kv, want 3", n)
	}
	b.placer.stop()
	fresh := NewMemBlockStore()
	r, err := Open(ctx, testLogID, fresh, kv, nil, writer1(t), WithBlocksInKV(true))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.syncPlacement(); err != nil {
		t.Fatal(err)
	}
	if fresh.Len() != 3 {
		t.Fatalf("%d joined blocks placed after the restart, want 3", fresh.Len())
	}
}

// A join with WithoutSync writes its batch unsynced even with
// WithSyncWrites; an append or a plain join stays synced.
func TestJoinWithoutSync(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		opts       []JoinOption
		wantSynced int
	}{
		{"plain join", nil, 1},
		{"WithoutSync", []JoinOption{WithoutSync()}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newReplica(t, 1, nil)
			mustAppend(t, a.log, "from a")
			kv := &gatedKV{MemKV: NewMemKV()}
			b, err := Open(ctx, testLogID, NewMemBlockStore(), kv, nil, writer1(t), WithSyncWrites(true))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			kv.set(func(k *gatedKV) { k.batches, k.synced = 0, 0 })
			res, err := b.Join(ctx, a.log.Heads(), "a", append(tc.opts, FetchFrom(a.blocks))...)
			if err != nil || len(res.Added) != 1 {
				t.Fatalf("join: %d added, %v", len(res.Added), err)
			}
			waitFor(t, "the join written", func() bool {
				n := 0
				kv.set(func(k *gatedKV) { n = k.batches })
				return n == 1
			})
			kv.set(func(k *gatedKV) {
				if k.batches != 1 || k.synced != tc.wantSynced {
					t.Errorf("%d batches, %d synced; want 1, %d", k.batches, k.synced, tc.wantSynced)
				}
			})
		})
	}
}

// Verified skips the signature check of the entries it names, and only
// theirs: an entry whose signature does not verify is accepted only when
// the caller vouches for its CID (which a caller must do only for bytes
// that verified).
func TestJoinVerified(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		verified func(cid.Cid) bool
		accepted bool
	}{
		{"not vouched for", nil, false},
		{"vouched for another cid", func(cid.Cid) bool { return false }, false},
		{"vouched for", func(cid.Cid) bool { return true }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := reencode(func() *Entry {
				e := craft(t, testKey(t, 1), "forged", 1, nil, nil)
				e.Sig = slices.Clone(e.Sig)
				e.Sig[0] ^= 1
				return e
			}())
			src := NewMemBlockStore()
			putAll(t, src, bad)
			b := newReplica(t, 2, nil)
			opts := []JoinOption{FetchFrom(src)}
			if tc.verified != nil {
				opts = append(opts, Verified(tc.verified))
			}
			res, _ := b.log.Join(ctx, []cid.Cid{bad.CID()}, "src", opts...)
			if got := len(res.Added) == 1; got != tc.accepted {
				t.Fatalf("accepted %v (%d added, %d rejected), want %v", got, len(res.Added), len(res.Rejected), tc.accepted)
			}
		})
	}
}

// A join WithoutSync returns before its write: its entries are in the log
// and readable at once, named by Heads once written; Close waits for the
// write.
func TestJoinWithoutSyncDoesNotWait(t *testing.T) {
	ctx := context.Background()
	a := newReplica(t, 1, nil)
	e := mustAppend(t, a.log, "from a")
	kv := &gatedKV{MemKV: NewMemKV()}
	b, err := Open(ctx, testLogID, NewMemBlockStore(), kv, nil, writer1(t), WithSyncWrites(true))
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	kv.set(func(k *gatedKV) { k.gate, k.entered = gate, make(chan struct{}, 4) })
	res, err := b.Join(ctx, a.log.Heads(), "a", FetchFrom(a.blocks), WithoutSync())
	if err != nil || len(res.Added) != 1 {
		t.Fatalf("join: %d added, %v", len(res.Added), err)
	}
	<-kv.entered // the write is under way, held
	if ok, _ := b.Has(ctx, e.CID()); !ok {
		t.Fatal("a joined entry being written is not in the log")
	}
	if got, err := b.Get(ctx, e.CID()); err != nil || !got.CID().Equals(e.CID()) {
		t.Fatalf("get a joined entry being written: %v", err)
	}
	if len(b.Heads()) != 0 {
		t.Fatal("Heads names an entry not written yet")
	}
	kv.set(func(k *gatedKV) { k.gate = nil })
	close(gate)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if h := b.Heads(); len(h) != 1 || !h[0].Equals(e.CID()) {
		t.Fatalf("heads after the write %v, want the joined entry", h)
	}
}

// A join with more than blockChunk bytes of blocks writes them in unsynced
// batches of about blockChunk before the one synced batch of the index, not
// in one batch of them all. The index batch comes last: a crash before it
// leaves blocks without an index, which a reopened log drops.
func TestLargeJoinWritesBlocksInChunks(t *testing.T) {
	ctx := context.Background()
	a := newReplica(t, 1, nil)
	payload := strings.Repeat("x", 64<<10)
	var want []*Entry
	for i := range 40 { // about 2.6 MiB of blocks
		want = append(want, mustAppend(t, a.log, fmt.Sprintf("%d %s", i, payload)))
	}
	kv := &syncRecorder{MemKV: NewMemKV()}
	key := testKey(t, 2)
	access := AllowWriters(testKey(t, 1).Public().(ed25519.PublicKey), key.Public().(ed25519.PublicKey))
	b, err := Open(ctx, testLogID, NewMemBlockStore(), kv, NewKeySigner(key), access,
		WithSyncWrites(true), WithBlocksInKV(true))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kv.batches = nil
	if _, err := b.Join(ctx, a.log.Heads(), "a", FetchFrom(a.blocks)); err != nil {
		t.Fatal(err)
	}
	if len(kv.batches) < 3 {
		t.Fatalf("%d batches for 2.6 MiB of blocks, want at least 2 of blocks and the index", len(kv.batches))
	}
	blocks := 0
	for i, bt := range kv.batches {
		last := i == len(kv.batches)-1
		if bt.sync != last {
			t.Errorf("batch %d of %d: synced = %v, want only the last (the index) synced", i+1, len(kv.batches), bt.sync)
		}
		if !last {
			blocks += bt.ops
			if bt.ops > 17 {
				t.Errorf("batch %d holds %d blocks of 64 KiB, want about 1 MiB", i+1, bt.ops)
			}
		}
	}
	if blocks == 0 || blocks >= len(want) {
		t.Errorf("%d of %d blocks written before the index batch, want most of them", blocks, len(want))
	}
	if got := cids(collect(t, b.Entries(ctx))); !slices.EqualFunc(got, cids(want), cid.Cid.Equals) {
		t.Fatalf("the log lists %d entries, want %d", len(got), len(want))
	}
}
