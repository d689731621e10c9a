package log

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
)

func writer1(t testing.TB) AccessController {
	return AllowWriters(testKey(t, 1).Public().(ed25519.PublicKey))
}

// gatedKV counts batches; while gate is set, a batch waits at it (after
// telling entered), and while fail is set, batches fail.
type gatedKV struct {
	*MemKV
	mu      sync.Mutex
	batches int
	synced  int
	gate    chan struct{}
	entered chan struct{}
	fail    bool
}

func (k *gatedKV) Batch(ctx context.Context, ops []KVOp, sync bool) error {
	k.mu.Lock()
	k.batches++
	if sync {
		k.synced++
	}
	gate, entered, fail := k.gate, k.entered, k.fail
	k.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	if fail {
		return errors.New("disk full")
	}
	return k.MemKV.Batch(ctx, ops, sync)
}

func (k *gatedKV) set(f func(k *gatedKV)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f(k)
}

// Concurrent appends share one write (a group commit): while one batch is
// being written, the appends that arrive are staged, then written together
// in one batch; each returns once its own entry is written, and
// subscribers get every entry once, in the order written.
func TestConcurrentAppendsShareOneWrite(t *testing.T) {
	ctx := context.Background()
	kv := &gatedKV{MemKV: NewMemKV()}
	blocks := NewMemBlockStore()
	l, err := Open(ctx, testLogID, blocks, kv, NewKeySigner(testKey(t, 1)), writer1(t), WithSyncWrites(true))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sub := l.Subscribe(ctx)
	gate := make(chan struct{})
	kv.set(func(k *gatedKV) { k.gate, k.entered, k.batches, k.synced = gate, make(chan struct{}, 64), 0, 0 })

	const n = 16
	errs := make(chan error, n+1)
	go func() { _, err := l.Append(ctx, []byte("first")); errs <- err }()
	<-kv.entered // the first append's batch is being written
	for i := range n {
		go func() { _, err := l.Append(ctx, fmt.Appendf(nil, "concurrent %d", i)); errs <- err }()
	}
	waitFor(t, "every append staged", func() bool { return l.Len() == n+1 })
	if got := len(l.Heads()); got != 0 {
		t.Fatalf("%d heads named before anything was written", got)
	}
	kv.set(func(k *gatedKV) { k.gate = nil })
	close(gate)
	for range n + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	kv.set(func(k *gatedKV) {
		if k.batches != 2 || k.synced != 2 {
			t.Errorf("%d batches (%d synced) for %d appends, want 2 (the first, then the rest together)", k.batches, k.synced, n+1)
		}
	})
	all := collect(t, l.Entries(ctx))
	var got []cid.Cid
	for range n + 1 {
		got = append(got, (<-sub).CID())
	}
	if !slices.EqualFunc(got, cids(all), cid.Cid.Equals) {
		t.Fatal("subscribers got the entries out of the log's order")
	}
	// Reopened from its storage, the log is the same.
	r, err := Open(ctx, testLogID, blocks, kv, nil, writer1(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(cids(collect(t, r.Entries(ctx))), cids(all), cid.Cid.Equals) || !slices.EqualFunc(r.Heads(), l.Heads(), cid.Cid.Equals) {
		t.Fatal("the reopened log differs")
	}
}

// A failed write is undone in memory with everything staged after it:
// those appends fail, nothing of them is in the log or its storage, and
// the log goes on.
func TestFailedGroupWriteIsUndone(t *testing.T) {
	ctx := context.Background()
	kv := &gatedKV{MemKV: NewMemKV()}
	blocks := NewMemBlockStore()
	l, err := Open(ctx, testLogID, blocks, kv, NewKeySigner(testKey(t, 1)), writer1(t), WithSyncWrites(true))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	kept := mustAppend(t, l, "kept")
	gate := make(chan struct{})
	kv.set(func(k *gatedKV) { k.gate, k.entered, k.fail = gate, make(chan struct{}, 64), true })
	errs := make(chan error, 4)
	go func() { _, err := l.Append(ctx, []byte("failing")); errs <- err }()
	<-kv.entered
	for i := range 3 {
		go func() { _, err := l.Append(ctx, fmt.Appendf(nil, "after %d", i)); errs <- err }()
	}
	waitFor(t, "every append staged", func() bool { return l.Len() == 5 })
	kv.set(func(k *gatedKV) { k.gate = nil })
	close(gate)
	later := 0
	for range 4 {
		err := <-errs
		if err == nil {
			t.Fatal("an append succeeded although its write failed")
		}
		if errors.Is(err, ErrWriteFailed) {
			later++
		}
	}
	if later != 3 {
		t.Fatalf("%d appends failed for an earlier write, want 3", later)
	}
	if l.Len() != 1 || !slices.EqualFunc(l.Heads(), []cid.Cid{kept.CID()}, cid.Cid.Equals) {
		t.Fatalf("after the failure: %d entries, heads %v; want only %s", l.Len(), l.Heads(), kept.CID())
	}
	kv.set(func(k *gatedKV) { k.fail = false })
	next := mustAppend(t, l, "after recovery")
	if !slices.EqualFunc(next.Next, []cid.Cid{kept.CID()}, cid.Cid.Equals) {
		t.Fatalf("the next append builds on %v, want %s", next.Next, kept.CID())
	}
	r, err := Open(ctx, testLogID, blocks, kv, nil, writer1(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := payloads(collect(t, r.Entries(ctx))); !slices.Equal(got, []string{"kept", "after recovery"}) {
		t.Fatalf("reopened log holds %q", got)
	}
}
