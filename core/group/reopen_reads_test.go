package group

import (
	"context"
	"iter"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
)

// readLog records the blocks read from a block store.
type readLog struct {
	log.BlockStore
	mu   sync.Mutex
	read map[string]bool
}

func (r *readLog) note(c cid.Cid) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.read[c.KeyString()] = true
}

func (r *readLog) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	r.note(c)
	return r.BlockStore.Get(ctx, c)
}

func (r *readLog) GetMany(ctx context.Context, cs []cid.Cid) iter.Seq2[log.Block, error] {
	for _, c := range cs {
		r.note(c)
	}
	return r.BlockStore.GetMany(ctx, cs)
}

// Reopening a group, and listing its messages, read no block of a message
// it already delivered: the delivered copies come from the KV, the log's
// order from its index in memory.
func TestReopenReadsNoDeliveredMessage(t *testing.T) {
	ctx := ctxT(t)
	blocks := &readLog{BlockStore: log.NewMemBlockStore(), read: map[string]bool{}}
	st := Storage{Blocks: blocks, KV: log.NewMemKV()}
	id := newIdentity(t)
	g, err := Create(ctx, id, st)
	if err != nil {
		t.Fatal(err)
	}
	var sent []cid.Cid
	for range 50 {
		m, err := g.Send(ctx, []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m.CID)
	}
	ks := testKeystore(t)
	if err := g.SaveKeys(ks); err != nil {
		t.Fatal(err)
	}
	g.Close()
	blocks.mu.Lock()
	clear(blocks.read)
	blocks.mu.Unlock()
	g2, err := Open(ctx, id, ks, g.ID(), st)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if got := len(bodies(t, g2)); got != 50 {
		t.Fatalf("reopened group holds %d messages, want 50", got)
	}
	blocks.mu.Lock()
	defer blocks.mu.Unlock()
	for _, c := range sent {
		if blocks.read[c.KeyString()] {
			t.Fatalf("reopening or listing read the block of delivered message %s", c)
		}
	}
}
