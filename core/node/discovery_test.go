package node

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// dialCounter is a real network that counts the Connect calls per peer.
type dialCounter struct {
	sdk.Network
	mu    sync.Mutex
	dials map[string]int
}

func (d *dialCounter) Connect(ctx context.Context, p sdk.PeerInfo) error {
	d.mu.Lock()
	d.dials[p.ID]++
	d.mu.Unlock()
	return d.Network.Connect(ctx, p)
}

func (d *dialCounter) count(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials[id]
}

func randomPeerID(t testing.TB) string {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// TestDiscoverDialsEachPeerOnce runs Discover over a real network and the
// in-memory rendezvous: the peer found is dialled and connected, itself
// is never dialled, and an unreachable peer seen three times is dialled
// once (the failure is logged, not retried within discoveryRetry).
func TestDiscoverDialsEachPeerOnce(t *testing.T) {
	shape := nodeShapes[0]
	dir := plugintest.SocketDir(t)
	a := startShapedNode(t, shape, filepath.Join(dir, "a.sock"))
	b := startShapedNode(t, shape, filepath.Join(dir, "b.sock"))
	nwA, nwB := &dialCounter{Network: nodeNetwork(t, a), dials: map[string]int{}}, nodeNetwork(t, b)
	saved := discoveryYield
	discoveryYield = 0
	t.Cleanup(func() { discoveryYield = saved })

	ns := "test/" + t.Name()
	rv := &rendezvousPlugin{r: sharedRendezvous}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	actx, stopAds := context.WithCancel(ctx)
	defer stopAds()
	if err := rv.Advertise(actx, ns, sdk.PeerInfo{ID: nwB.PeerID(), Addrs: nwB.Addrs()}); err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Discover(dctx, nwA, map[string]sdk.Discovery{"rendezvous": rv}, ns, slog.Default()) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("discover: %v", err)
		}
	}()
	waitUntil(t, ctx, "a connected to b", func() bool { return len(peerAddrs(ctx, nwA, nwB.PeerID())) > 0 })

	unreachable := sdk.PeerInfo{ID: randomPeerID(t), Addrs: []string{"/x-node-test-unix/%2Fnonexistent%2Fu.sock"}}
	sentinel := sdk.PeerInfo{ID: randomPeerID(t), Addrs: []string{"/x-node-test-unix/%2Fnonexistent%2Fs.sock"}}
	for _, p := range []sdk.PeerInfo{unreachable, unreachable, {ID: nwA.PeerID(), Addrs: nwA.Addrs()}, unreachable, sentinel} {
		if err := rv.Advertise(actx, ns, p); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, ctx, "the sentinel dialled", func() bool { return nwA.count(sentinel.ID) == 1 })
	cases := []struct {
		name string
		id   string
		want int
	}{
		{"found peer dialled once", nwB.PeerID(), 1},
		{"unreachable peer seen three times dialled once", unreachable.ID, 1},
		{"itself never dialled", nwA.PeerID(), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := nwA.count(tc.id); got != tc.want {
				t.Fatalf("dials = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestDiscoverRefusesBadArguments(t *testing.T) {
	cases := []struct {
		name string
		run  func() error
	}{
		{"no network", func() error {
			return Discover(context.Background(), nil, map[string]sdk.Discovery{"r": &rendezvousPlugin{r: sharedRendezvous}}, "ns", nil)
		}},
		{"no discovery", func() error {
			return Discover(context.Background(), &dialCounter{}, nil, "ns", nil)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Fatalf("err = %v, want sdk.ErrInvalidArgument", err)
			}
		})
	}
}
