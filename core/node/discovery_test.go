package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
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
	// The sightings are handled in order, but each dial runs in its own
	// goroutine: the sentinel's may reach Connect before the unreachable
	// peer's. Once both are dialled, every sighting was handled.
	waitUntil(t, ctx, "the sentinel and the unreachable peer dialled", func() bool {
		return nwA.count(sentinel.ID) == 1 && nwA.count(unreachable.ID) > 0
	})
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

// fakeNetwork is the part of a network Discover uses: Connect blocks
// until its context ends (an address that swallows packets), counting
// calls and the most at once.
type fakeNetwork struct {
	sdk.Network
	id string
	// reachable: Connect succeeds at once and the peer is connected.
	reachable bool

	mu           sync.Mutex
	addrs        []string
	connects     int
	inFlight     int
	mostInFlight int
	connected    map[string]bool
}

func (f *fakeNetwork) PeerID() string { return f.id }

func (f *fakeNetwork) Addrs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.addrs)
}

func (f *fakeNetwork) Peers(context.Context) ([]sdk.PeerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sdk.PeerInfo
	for id := range f.connected {
		out = append(out, sdk.PeerInfo{ID: id})
	}
	return out, nil
}

func (f *fakeNetwork) Connect(ctx context.Context, p sdk.PeerInfo) error {
	f.mu.Lock()
	f.connects++
	if f.reachable {
		if f.connected == nil {
			f.connected = map[string]bool{}
		}
		f.connected[p.ID] = true
		f.mu.Unlock()
		return nil
	}
	f.inFlight++
	f.mostInFlight = max(f.mostInFlight, f.inFlight)
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.inFlight--
	f.mu.Unlock()
	return ctx.Err()
}

func (f *fakeNetwork) counts() (connects, most int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connects, f.mostInFlight
}

// scriptedDiscovery reports what the test sends on its channel, once per
// FindPeers call (each call gets the next channel of finds), and records
// what was advertised.
type scriptedDiscovery struct {
	finds chan chan sdk.PeerInfo

	mu         sync.Mutex
	advertised []sdk.PeerInfo
	searches   int
}

func (s *scriptedDiscovery) Advertise(_ context.Context, _ string, self sdk.PeerInfo) error {
	s.mu.Lock()
	s.advertised = append(s.advertised, self)
	s.mu.Unlock()
	return nil
}

func (s *scriptedDiscovery) FindPeers(ctx context.Context, _ string) (<-chan sdk.PeerInfo, error) {
	s.mu.Lock()
	s.searches++
	s.mu.Unlock()
	select {
	case ch := <-s.finds:
		return ch, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *scriptedDiscovery) state() (int, []sdk.PeerInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.searches, slices.Clone(s.advertised)
}

// setDiscoveryTuning sets tuning variables for one test.
func setDiscoveryTuning(t *testing.T, set func()) {
	saved := []any{discoveryRetry, discoveryYield, discoveryDialTimeout, discoveryMaxDialing, discoveryDialBudget, discoveryRestartMin, discoveryAddrsEvery}
	t.Cleanup(func() {
		discoveryRetry, discoveryYield, discoveryDialTimeout = saved[0].(time.Duration), saved[1].(time.Duration), saved[2].(time.Duration)
		discoveryMaxDialing, discoveryDialBudget = saved[3].(int), saved[4].(int)
		discoveryRestartMin, discoveryAddrsEvery = saved[5].(time.Duration), saved[6].(time.Duration)
	})
	set()
}

// TestDiscoverBoundsDialsUnderAFlood: a discovery reporting thousands of
// distinct peers, all unreachable, makes the node dial at most
// discoveryMaxDialing at once and discoveryDialBudget per window, and
// remember at most discoveryMaxSeen.
func TestDiscoverBoundsDialsUnderAFlood(t *testing.T) {
	setDiscoveryTuning(t, func() { discoveryYield = 0; discoveryDialTimeout = 50 * time.Millisecond })
	nw := &fakeNetwork{id: "m-self", addrs: []string{"/ip4/10.0.0.1/tcp/4001"}}
	disc := &scriptedDiscovery{finds: make(chan chan sdk.PeerInfo, 1)}
	found := make(chan sdk.PeerInfo)
	disc.finds <- found
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Discover(ctx, nw, map[string]sdk.Discovery{"flood": disc}, "ns", slog.New(slog.DiscardHandler))
	}()
	const flood = 20000
	start := time.Now()
	for i := range flood {
		// "a" < "m-self": this node is the larger and would yield; the
		// yield is 0 here.
		found <- sdk.PeerInfo{ID: fmt.Sprintf("a-fake-%06d", i), Addrs: []string{"/ip4/10.0.0.200/tcp/4001"}}
	}
	took := time.Since(start)
	connects, most := nw.counts()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sightings taken in %s (%.0f/s): %d dials, at most %d at once", flood, took, flood/took.Seconds(), connects, most)
	if most > discoveryMaxDialing {
		t.Errorf("%d dials at once, want at most %d", most, discoveryMaxDialing)
	}
	if connects > discoveryDialBudget {
		t.Errorf("%d dials in one window, want at most %d", connects, discoveryDialBudget)
	}
	if connects == 0 {
		t.Error("no dial at all")
	}
}

// TestDiscoverRestartsAndReadvertises: a search that ends (a plugin
// restarted) is started again, and a change of the network's addresses
// is advertised.
func TestDiscoverRestartsAndReadvertises(t *testing.T) {
	setDiscoveryTuning(t, func() { discoveryRestartMin = 10 * time.Millisecond; discoveryAddrsEvery = 20 * time.Millisecond })
	nw := &fakeNetwork{id: "self", addrs: []string{"/ip4/10.0.0.1/tcp/4001"}}
	disc := &scriptedDiscovery{finds: make(chan chan sdk.PeerInfo, 4)}
	first := make(chan sdk.PeerInfo)
	close(first) // the first search ends at once
	disc.finds <- first
	disc.finds <- make(chan sdk.PeerInfo)
	disc.finds <- make(chan sdk.PeerInfo)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Discover(dctx, nw, map[string]sdk.Discovery{"d": disc}, "ns", slog.New(slog.DiscardHandler))
	}()
	waitUntil(t, ctx, "the search started again", func() bool { n, _ := disc.state(); return n == 2 })
	nw.mu.Lock()
	nw.addrs = []string{"/ip4/10.0.0.2/tcp/4001"}
	nw.mu.Unlock()
	waitUntil(t, ctx, "the new address advertised", func() bool {
		_, ads := disc.state()
		return len(ads) == 3 && slices.Equal(ads[2].Addrs, []string{"/ip4/10.0.0.2/tcp/4001"})
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestDiscoverRedialsAPeerThatCameBack: a peer whose dial connected is
// dialled again when sighted after it went away (a node that restarted
// announces itself again), without waiting discoveryRetry; while it stays
// connected, sightings dial nothing.
func TestDiscoverRedialsAPeerThatCameBack(t *testing.T) {
	setDiscoveryTuning(t, func() { discoveryYield = 0 })
	saved := discoveryRecheck
	discoveryRecheck = 0
	t.Cleanup(func() { discoveryRecheck = saved })
	nw := &fakeNetwork{id: "m-self", reachable: true, addrs: []string{"/ip4/10.0.0.1/tcp/4001"}}
	disc := &scriptedDiscovery{finds: make(chan chan sdk.PeerInfo, 1)}
	found := make(chan sdk.PeerInfo)
	disc.finds <- found
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dctx, stop := context.WithCancel(ctx)
	var mu sync.Mutex
	var connectedAt []string
	done := make(chan error, 1)
	go func() {
		done <- Discover(dctx, nw, map[string]sdk.Discovery{"d": disc}, "ns", slog.New(slog.DiscardHandler),
			OnConnected(func(id, from string) { mu.Lock(); connectedAt = append(connectedAt, id+" by "+from); mu.Unlock() }))
	}()
	peer := sdk.PeerInfo{ID: "a-peer", Addrs: []string{"/ip4/10.0.0.2/tcp/4001"}}
	sight := func(wantConnects int, what string) {
		t.Helper()
		found <- peer
		waitUntil(t, ctx, what, func() bool {
			mu.Lock()
			defer mu.Unlock()
			n, _ := nw.counts()
			return n == wantConnects && len(connectedAt) > 0
		})
	}
	sight(1, "the first sighting dialled")
	mu.Lock()
	connectedAt = nil
	mu.Unlock()
	sight(1, "a sighting while connected: no dial")
	nw.mu.Lock()
	delete(nw.connected, peer.ID)
	nw.mu.Unlock()
	mu.Lock()
	connectedAt = nil
	mu.Unlock()
	sight(2, "a sighting after it went away: dialled again")
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if connectedAt[0] != "a-peer by d" {
		t.Fatalf("OnConnected got %q", connectedAt)
	}
}

// TestDiscoverSmallerIDDialsFirst: of two nodes that find each other at
// once, the one with the smaller peer id dials at once and the larger
// waits discoveryYield for it (here longer than the test), so they do not
// open two connections.
func TestDiscoverSmallerIDDialsFirst(t *testing.T) {
	cases := []struct {
		name     string
		peer     string
		wantDial bool
	}{
		{"peer larger: dial at once", "z-peer", true},
		{"peer smaller: wait for it", "a-peer", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setDiscoveryTuning(t, func() { discoveryYield = time.Hour })
			nw := &fakeNetwork{id: "m-self", reachable: true, addrs: []string{"/ip4/10.0.0.1/tcp/4001"}}
			disc := &scriptedDiscovery{finds: make(chan chan sdk.PeerInfo, 1)}
			found := make(chan sdk.PeerInfo, 2)
			disc.finds <- found
			connected := make(chan string, 2)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Discover(ctx, nw, map[string]sdk.Discovery{"d": disc}, "ns", slog.New(slog.DiscardHandler),
					OnConnected(func(id, _ string) { connected <- id }))
			}()
			found <- sdk.PeerInfo{ID: tc.peer, Addrs: []string{"/ip4/10.0.0.2/tcp/4001"}}
			// A marker peer larger than self is always dialled at once:
			// once it is, the sighting under test has been handled.
			found <- sdk.PeerInfo{ID: "zz-marker", Addrs: []string{"/ip4/10.0.0.3/tcp/4001"}}
			var got []string
			deadline := time.After(30 * time.Second)
			for !slices.Contains(got, "zz-marker") || (tc.wantDial && !slices.Contains(got, tc.peer)) {
				select {
				case id := <-connected:
					got = append(got, id)
				case <-deadline:
					t.Fatalf("connected %v: the larger peers were not dialled at once", got)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if slices.Contains(got, tc.peer) != tc.wantDial {
				t.Fatalf("connected %v; want %s dialled: %v", got, tc.peer, tc.wantDial)
			}
		})
	}
}
