package ipfs

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/skein-p2p/skein/sdk"
)

// dht_scope all runs one DHT that finds providers over any address (here
// loopback); dual runs a WAN DHT and a LAN DHT (protocol extension /lan),
// each answering under its own protocol.
func TestDHTScopes(t *testing.T) {
	for _, tc := range []struct {
		scope     string
		protocols []protocol.ID
	}{
		{"all", []protocol.ID{"/skein/kad/1.0.0"}},
		{"dual", []protocol.ID{"/skein/kad/1.0.0", "/skein/lan/kad/1.0.0"}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			a := startNetwork(t, map[string]any{"dht_mode": "server", "dht_scope": tc.scope})
			for _, p := range tc.protocols {
				if !slices.Contains(a.host.Mux().Protocols(), p) {
					t.Fatalf("the host does not answer %s; it answers %v", p, a.host.Mux().Protocols())
				}
			}
			if _, isDual := a.dht.(*dual.DHT); isDual != (tc.scope == "dual") {
				t.Fatalf("dht_scope %s runs %T", tc.scope, a.dht)
			}
			if tc.scope != "all" {
				return // the WAN and LAN DHTs both ignore loopback peers
			}
			b := startNetwork(t, map[string]any{"dht_mode": "server", "dht_scope": tc.scope})
			connect(t, b, a)
			blk := rawBlock(t, []byte("provided over the DHT"))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := a.PutBlocks(ctx, []sdk.Block{blk}); err != nil {
				t.Fatal(err)
			}
			// The routing table fills as the peers identify each other:
			// provide until it is accepted.
			for {
				if err := a.Provide(ctx, blk.CID); err == nil {
					break
				} else if ctx.Err() != nil {
					t.Fatalf("provide: %v", err)
				}
			}
			// A provider record is sent without an answer, and b's
			// routing table may not hold a yet: look up until found.
			for ctx.Err() == nil {
				found, err := b.FindProviders(ctx, blk.CID)
				if err != nil {
					t.Fatal(err)
				}
				for p := range found {
					if p.ID == a.PeerID() {
						return
					}
				}
			}
			t.Fatalf("b did not find a as provider: %v", ctx.Err())
		})
	}
}
