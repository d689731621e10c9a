package replication_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
)

func TestBlockStoreOverNetwork(t *testing.T) {
	sn := simnet.New(simnet.WithDefaultLink(simnet.Link{Latency: time.Millisecond}))
	defer sn.Close()
	a, _ := sn.AddNode("a")
	b, _ := sn.AddNode("b")
	sn.ConnectAll()
	sa, sb := replication.NewBlockStore(a, 4), replication.NewBlockStore(b, 4)
	ctx := context.Background()

	var want []cid.Cid
	for i := range 10 {
		data := []byte{byte(i), 'b', 'l', 'k'}
		c := cidOf(data)
		if err := sa.Put(ctx, c, data); err != nil {
			t.Fatal(err)
		}
		want = append(want, c)
	}
	if err := sa.Put(ctx, cidOf([]byte("x")), []byte("y")); err == nil {
		t.Fatal("put of a block not matching its cid succeeded")
	}
	if ok, err := sb.Has(ctx, want[0]); err != nil || ok {
		t.Fatalf("b has a's block before fetching: %v %v", ok, err)
	}
	tests := []struct {
		name      string
		cids      []cid.Cid
		wantOK    int
		wantErrs  int
		deadline  time.Duration
		errorKind error
	}{
		{"all from a peer, in chunks", want, 10, 0, 5 * time.Second, nil},
		{"missing everywhere", []cid.Cid{cidOf([]byte("nobody has this"))}, 0, 1, 50 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, tc.deadline)
			defer cancel()
			ok, bad := 0, 0
			for blk, err := range sb.GetMany(ctx, tc.cids) {
				if err != nil {
					bad++
					if tc.errorKind != nil && !errors.Is(err, tc.errorKind) {
						t.Errorf("error %v, want %v", err, tc.errorKind)
					}
					continue
				}
				if !cidOf(blk.Data).Equals(blk.CID) {
					t.Fatalf("block %s does not match its data", blk.CID)
				}
				ok++
			}
			if ok != tc.wantOK || bad != tc.wantErrs {
				t.Fatalf("got %d blocks and %d errors, want %d and %d", ok, bad, tc.wantOK, tc.wantErrs)
			}
		})
	}
	// Fetched blocks are now local to b.
	if data, err := sb.Get(ctx, want[3]); err != nil || !cidOf(data).Equals(want[3]) {
		t.Fatalf("get after fetch: %v", err)
	}
	if ok, _ := sb.Has(ctx, want[3]); !ok {
		t.Fatal("fetched block not stored")
	}
	var _ log.BlockStore = sb
}
