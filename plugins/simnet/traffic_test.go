package simnet_test

import (
	"context"
	"testing"

	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// TestBytesCounted: every payload byte on the simulated network is counted
// at both ends: pubsub, block fetches, direct requests.
func TestBytesCounted(t *testing.T) {
	n := simnet.New(simnet.WithDefaultLink(simnet.Link{Bandwidth: 1 << 30}))
	defer n.Close()
	ns := nodes(t, n, "a", "b")
	n.ConnectAll()
	ctx := t.Context()
	sub, err := ns[1].Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := ns[0].Publish(ctx, "t", make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	recv(t, sub)
	b := block(make([]byte, 1000))
	if err := ns[0].PutBlocks(ctx, []sdk.Block{b}); err != nil {
		t.Fatal(err)
	}
	for _, err := range ns[1].GetBlocks(ctx, [][]byte{b.CID}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := ns[0].HandleRequests("/p", func(context.Context, string, []byte) ([]byte, error) { return make([]byte, 30), nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := ns[1].Request(ctx, "a", "/p", make([]byte, 7)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		node           *simnet.Node
		sent, received uint64
	}{
		{ns[0], 100 + 1000 + 30, 7},
		{ns[1], 7, 100 + 1000 + 30},
	} {
		s, r := tc.node.Bytes()
		if s != tc.sent || r != tc.received {
			t.Errorf("%s: sent %d received %d, want %d and %d", tc.node.PeerID(), s, r, tc.sent, tc.received)
		}
	}
}
