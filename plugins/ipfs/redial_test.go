package ipfs

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// connEvents subscribes to n's connectedness events about p.
func connEvents(t testing.TB, n *Network, p peer.ID) <-chan network.Connectedness {
	t.Helper()
	sub, err := n.Host().EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan network.Connectedness, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for raw := range sub.Out() {
			e := raw.(event.EvtPeerConnectednessChanged)
			if e.Peer != p {
				continue
			}
			select {
			case out <- e.Connectedness:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = sub.Close()
		<-done
	})
	return out
}

// waitEvent waits for the connectedness want on ch, until the deadline.
func waitEvent(t testing.TB, ch <-chan network.Connectedness, want network.Connectedness, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
		case <-deadline.C:
			t.Fatalf("no %v event within %s", want, within)
		}
	}
}

// noEvent fails if want shows up on ch within the window.
func noEvent(t testing.TB, ch <-chan network.Connectedness, want network.Connectedness, window time.Duration) {
	t.Helper()
	end := time.NewTimer(window)
	defer end.Stop()
	for {
		select {
		case got := <-ch:
			if got == want {
				t.Fatalf("unexpected %v event", want)
			}
		case <-end.C:
			return
		}
	}
}

// waitPubsubStreams waits until a and b each hold the other's gossipsub
// stream: a new peer's setup, which dials it if it is gone meanwhile, is
// over.
func waitPubsubStreams(t testing.TB, a, b *Network) {
	t.Helper()
	inbound := func(to, from *Network) bool {
		for _, c := range to.Host().Network().ConnsToPeer(from.Host().ID()) {
			for _, s := range c.GetStreams() {
				if strings.HasPrefix(string(s.Protocol()), "/meshsub/") && s.Stat().Direction == network.DirInbound {
					return true
				}
			}
		}
		return false
	}
	waitFor(t, "gossipsub streams both ways", func() bool { return inbound(a, b) && inbound(b, a) })
}

func connected(a, b *Network) bool {
	return a.Host().Network().Connectedness(b.Host().ID()) == network.Connected
}

func statusDetail(t testing.TB, n *Network, key string) string {
	t.Helper()
	st, err := n.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Details[key]
}

// tcpAddr returns n's /ip4/127.0.0.1/tcp/<port> listen address.
func tcpAddr(t testing.TB, n *Network) string {
	t.Helper()
	for _, a := range n.Host().Addrs() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil && !strings.Contains(a.String(), "/ws") {
			return a.String()
		}
	}
	t.Fatalf("no TCP address in %v", n.Host().Addrs())
	return ""
}

// TestBootstrapPeerIsReconnectedAfterRestart stops a bootstrap peer and
// starts it again with the same identity on the same address: the node
// that bootstraps to it reconnects by itself.
func TestBootstrapPeerIsReconnectedAfterRestart(t *testing.T) {
	dirB := filepath.Join(t.TempDir(), "b")
	b := New()
	if _, err := b.Configure(context.Background(), map[string]any{"data_dir": dirB, "listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	listen := tcpAddr(t, b)
	idB := b.PeerID()
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// b again, now on a fixed port, as a bootstrap peer names it.
	b = startNetwork(t, map[string]any{"data_dir": dirB, "listen": []any{listen}})
	if b.PeerID() != idB {
		t.Fatalf("b's identity changed across restart: %s, then %s", idB, b.PeerID())
	}
	a := startNetwork(t, map[string]any{"bootstrap": []any{listen + "/p2p/" + idB}, "redial_max_backoff": "2s"})
	waitFor(t, "a connected to its bootstrap peer", func() bool { return connected(a, b) })
	waitPubsubStreams(t, a, b)
	events := connEvents(t, a, b.Host().ID())

	for round := range 2 {
		if err := b.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, events, network.NotConnected, 15*time.Second)
		before := statusDetail(t, a, "redials")
		// While b is away, a keeps trying (and failing).
		waitFor(t, "a redialling the absent peer", func() bool { return statusDetail(t, a, "redials") != before })
		b = startNetwork(t, map[string]any{"data_dir": dirB, "listen": []any{listen}})
		back := time.Now()
		waitEvent(t, events, network.Connected, 15*time.Second)
		t.Logf("round %d: a reconnected %s after b came back", round, time.Since(back).Round(time.Millisecond))
		if got := a.Host().Network().ConnsToPeer(b.Host().ID()); len(got) == 0 || got[0].Stat().Direction != network.DirOutbound {
			t.Fatalf("want a's outbound connection to b, got %v", got)
		}
	}
	if got := statusDetail(t, a, "wanted"); got != "1" {
		t.Fatalf("status wanted = %q, want 1", got)
	}
}

// TestConnectedPeerIsRedialledAfterDrop drops a connection made with
// Connect from the far side: the node that asked for it dials again,
// unless redialling is off.
func TestConnectedPeerIsRedialledAfterDrop(t *testing.T) {
	tests := []struct {
		name   string
		cfg    map[string]any
		redial bool
	}{
		{"redial on", map[string]any{"redial_max_backoff": "2s"}, true},
		{"default config", nil, true},
		{"redial off", map[string]any{"redial_max_backoff": "0"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := startNetwork(t, tc.cfg)
			b := startNetwork(t, nil)
			connect(t, a, b)
			events := connEvents(t, a, b.Host().ID())
			for round := range 2 {
				// b must hold the connection before it can close it, and
				// a's gossipsub must have opened its stream: it dials a
				// peer it is still setting up (not a redial).
				waitPubsubStreams(t, a, b)
				before := statusDetail(t, a, "redials")
				if err := b.Host().Network().ClosePeer(a.Host().ID()); err != nil {
					t.Fatal(err)
				}
				waitEvent(t, events, network.NotConnected, 15*time.Second)
				if !tc.redial {
					// Longer than the first backoff and its jitter.
					noEvent(t, events, network.Connected, 3*time.Second)
					return
				}
				dropped := time.Now()
				waitEvent(t, events, network.Connected, 15*time.Second)
				t.Logf("round %d: redialled %s after the drop", round, time.Since(dropped).Round(time.Millisecond))
				if statusDetail(t, a, "redials") == before {
					t.Fatal("reconnected, but not by a redial")
				}
				// Only a wants b: the connection is a's.
				if got := a.Host().Network().ConnsToPeer(b.Host().ID()); len(got) == 0 || got[0].Stat().Direction != network.DirOutbound {
					t.Fatalf("want a's outbound connection to b, got %v", got)
				}
			}
		})
	}
}

// TestBlockedPeerIsNotRedialled blocks a wanted peer: no dial is made
// while the block lasts, and the peer is dialled again once it ends.
func TestBlockedPeerIsNotRedialled(t *testing.T) {
	a := startNetwork(t, map[string]any{"redial_max_backoff": "2s"})
	b := startNetwork(t, nil)
	connect(t, a, b)
	waitPubsubStreams(t, a, b)
	events := connEvents(t, a, b.Host().ID())
	const block = 4 * time.Second
	attempts := a.redial.attempts.Load()
	if err := a.BlockPeer(context.Background(), b.PeerID(), "test", block); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(block)
	waitEvent(t, events, network.NotConnected, 15*time.Second)
	// Well past the first redial (1 s after the loss), inside the block.
	noEvent(t, events, network.Connected, block-time.Second)
	if got := a.redial.attempts.Load(); got != attempts {
		t.Fatalf("%d redials of a blocked peer", got-attempts)
	}
	if time.Now().After(until) {
		t.Skip("too slow to watch the whole block (loaded machine)")
	}
	// The block ends: the peer is wanted still, and dialled again.
	waitEvent(t, events, network.Connected, 15*time.Second)
	if a.redial.attempts.Load() == attempts {
		t.Fatal("reconnected without a redial")
	}
}

// TestStopEndsRedialLoop stops a node while its redialer has a dial under
// way (to a listener that accepts TCP and then says nothing) and wanted
// peers scheduled: Stop returns, and the loop and every dial have ended.
func TestStopEndsRedialLoop(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		_ = silent.Close()
		for c := range accepted {
			_ = c.Close()
		}
	}()
	port := silent.Addr().(*net.TCPAddr).Port
	mute := peerIDForTest(t)
	a := startNetwork(t, map[string]any{
		"bootstrap":          []any{"/ip4/127.0.0.1/tcp/" + strconv.Itoa(port) + "/p2p/" + mute.String()},
		"redial_max_backoff": "1s",
	})
	b := startNetwork(t, nil)
	connect(t, a, b)
	r := a.redial
	waitFor(t, "a dial to the silent peer under way", func() bool { return r.attempts.Load() > 0 && len(accepted) > 0 })

	stopped := make(chan error, 1)
	go func() { stopped <- a.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Stop did not return with a redial under way")
	}
	select {
	case <-r.done:
	default:
		t.Fatal("redial loop still running after Stop")
	}
	if a.redial != nil {
		t.Fatal("redialer kept after Stop")
	}
}

func peerIDForTest(t testing.TB) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestWantedSetEvictsLeastRecentlyWanted fills a wanted set of two:
// the least recently wanted peer is forgotten first, and bootstrap peers
// never are.
func TestWantedSetEvictsLeastRecentlyWanted(t *testing.T) {
	n := startNetwork(t, map[string]any{"redial_max_backoff": "0"})
	ids := make([]peer.ID, 5)
	for i := range ids {
		ids[i] = peerIDForTest(t)
	}
	type want struct {
		peer      int
		bootstrap bool
	}
	tests := []struct {
		name   string
		wants  []want
		kept   []int
		forgot []int
	}{
		{"third evicts first", []want{{0, false}, {1, false}, {2, false}}, []int{1, 2}, []int{0}},
		{"wanting again refreshes", []want{{0, false}, {1, false}, {0, false}, {2, false}}, []int{0, 2}, []int{1}},
		{"bootstrap peers are kept", []want{{3, true}, {4, true}, {0, false}, {1, false}, {2, false}}, []int{3, 4, 1, 2}, []int{0}},
		{"a wanted peer becomes a bootstrap peer", []want{{0, false}, {0, true}, {1, false}, {2, false}}, []int{0, 1, 2}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Not started: nothing is dialled, only remembered.
			r := newRedialer(n.Host(), n.gater, slog.Default(), time.Minute, 2)
			for _, w := range tc.wants {
				r.want(peer.AddrInfo{ID: ids[w.peer]}, w.bootstrap, false)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			cm := n.Host().ConnManager()
			for _, i := range tc.kept {
				if r.peers[ids[i]] == nil {
					t.Errorf("peer %d forgotten", i)
				}
				if !cm.IsProtected(ids[i], wantedProtectTag) {
					t.Errorf("peer %d wanted but its connections not protected from trimming", i)
				}
			}
			for _, i := range tc.forgot {
				if r.peers[ids[i]] != nil {
					t.Errorf("peer %d kept", i)
				}
				if cm.IsProtected(ids[i], wantedProtectTag) {
					t.Errorf("peer %d forgotten but still protected", i)
				}
			}
			for _, id := range ids {
				cm.Unprotect(id, wantedProtectTag)
			}
			if len(r.peers) != len(tc.kept) {
				t.Errorf("%d peers wanted, want %d", len(r.peers), len(tc.kept))
			}
		})
	}
	t.Run("own peer id is not wanted", func(t *testing.T) {
		r := newRedialer(n.Host(), n.gater, slog.Default(), time.Minute, 2)
		r.want(peer.AddrInfo{ID: n.Host().ID()}, false, true)
		if r.wanted() != 0 {
			t.Fatal("the node wants itself")
		}
	})
}

// TestRedialBackoffSchedule: each scheduled redial comes one backoff
// (plus at most a fifth of jitter, never less) later; the backoff doubles
// up to the cap.
func TestRedialBackoffSchedule(t *testing.T) {
	n := startNetwork(t, map[string]any{"redial_max_backoff": "0"})
	tests := []struct {
		name       string
		maxBackoff time.Duration
		delays     []time.Duration
	}{
		{"default cap", time.Minute, []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}},
		{"cap of 5 s", 5 * time.Second, []time.Duration{1, 2, 4, 5, 5}},
		{"cap at the minimum", time.Second, []time.Duration{1, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRedialer(n.Host(), n.gater, slog.Default(), tc.maxBackoff, 8)
			p := &wantedPeer{backoff: redialMinBackoff}
			now := time.Unix(1000, 0)
			for i, d := range tc.delays {
				d *= time.Second
				r.scheduleLocked(p, now)
				got := p.next.Sub(now)
				if got < d || got > d+d/5 {
					t.Fatalf("attempt %d: delay %v, want %v..%v", i, got, d, d+d/5)
				}
			}
		})
	}
}
