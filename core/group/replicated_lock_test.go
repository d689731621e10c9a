package group

import (
	"context"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
)

// stallingGetter serves blocks from a store, but only once released: it
// stands for a slow network, or blocks nobody serves until the
// replicator's stall timeout.
type stallingGetter struct {
	blocks  log.BlockStore
	asked   chan struct{} // closed at the first GetMany
	release chan struct{}
}

func (g *stallingGetter) GetMany(ctx context.Context, cids []cid.Cid) iter.Seq2[log.Block, error] {
	return func(yield func(log.Block, error) bool) {
		select {
		case <-g.asked:
		default:
			close(g.asked)
		}
		select {
		case <-g.release:
		case <-ctx.Done():
		}
		for b, err := range g.blocks.GetMany(ctx, cids) {
			if !yield(b, err) {
				return
			}
		}
	}
}

// A join of either log that is still fetching holds no lock of the group:
// this device sends, lists and joins the other log meanwhile.
func TestReplicatedJoinFetchesWithoutTheGroupLock(t *testing.T) {
	tests := []struct {
		name string
		log  func(*Group) *ReplicatedLog
		// heads returns the writer's heads of that log after its appends.
		heads func(*Group) []cid.Cid
	}{
		{"messages", (*Group).MessageLog, func(g *Group) []cid.Cid { return g.Heads().Messages }},
		{"meta", (*Group).MetaLog, func(g *Group) []cid.Cid { return g.Heads().Meta }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			n := newNet()
			rs := n.create(t, "alice", "bob")
			alice, bob := rs[0], rs[1]
			// Alice's first message shares her chain (a metadata entry);
			// bob has it before the join of her second.
			send(t, alice, "first")
			syncAll(t, alice, bob)
			send(t, alice, "while bob's join waits")
			if _, err := alice.g.Invite(ctx); err != nil { // a metadata entry
				t.Fatal(err)
			}
			getter := &stallingGetter{blocks: n.blocks, asked: make(chan struct{}), release: make(chan struct{})}
			joined := make(chan error, 1)
			go func() {
				_, err := tt.log(bob.g).Join(ctx, tt.heads(alice.g), "alice", log.FetchFrom(getter))
				joined <- err
			}()
			<-getter.asked

			// Meanwhile, bob's group is usable.
			done := make(chan error, 1)
			go func() {
				_, err := bob.g.Send(ctx, []byte("sent while a join fetches"))
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("send while a join fetches: %v", err)
				}
			case err := <-joined:
				t.Fatalf("the join ended before it was released: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("Send waited for a join that was fetching")
			}

			close(getter.release)
			if err := <-joined; err != nil {
				t.Fatalf("join after release: %v", err)
			}
			for _, h := range tt.heads(alice.g) {
				if ok, err := tt.log(bob.g).Has(ctx, h); err != nil || !ok {
					t.Fatalf("bob lacks alice's head %s after the join", h)
				}
			}
			want := []string{"sent while a join fetches"}
			if tt.name == "messages" {
				want = append(want, "while bob's join waits")
			}
			for _, body := range want {
				if got := bodies(t, bob.g); !slices.Contains(got, body) {
					t.Fatalf("bob lists %q, want %q among them", got, body)
				}
			}
		})
	}
}
