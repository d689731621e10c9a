package ipfs

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/skein-p2p/skein/sdk"
)

// closedPort returns a loopback TCP port nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

// TestConnectDialsTheAddressGiven: connecting to a peer already connected,
// on an address where it does not listen, fails and remembers nothing of
// that address; on its real address it succeeds and that address is
// remembered.
func TestConnectDialsTheAddressGiven(t *testing.T) {
	dir := t.TempDir()
	a := startNetwork(t, map[string]any{"data_dir": dir})
	b := startNetwork(t, nil)
	connect(t, a, b)
	wrong := "/ip4/127.0.0.1/tcp/" + closedPort(t)
	right := tcpAddr(t, b)
	tests := []struct {
		name    string
		addr    string
		wantErr bool
	}{
		{"wrong port of a connected peer", wrong, true},
		{"the peer's address", right, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := a.Connect(ctx, sdk.PeerInfo{ID: b.PeerID(), Addrs: []string{tc.addr}})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Connect(%s) = %v, want error %v", tc.addr, err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.addr) {
				t.Fatalf("error %q does not name the address", err)
			}
		})
	}
	if !connected(a, b) {
		t.Fatal("the failed connect dropped the connection that was up")
	}
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	saved, errs := loadWantedPeers(filepath.Join(dir, wantedPeersFile))
	if len(errs) > 0 || len(saved) != 1 {
		t.Fatalf("saved %v %v; want b only", saved, errs)
	}
	got := fmtAddrs(saved[0].Addrs)
	if strings.Contains(got, wrong) || !strings.Contains(got, right) {
		t.Fatalf("saved addresses %s; want %s and not %s", got, right, wrong)
	}
}

// TestInboundPeerRememberedWithListenAddrs: a peer that dialled us, once
// wanted (Connect with no address: it shares a group), is remembered with
// the addresses it listens on, and dialled from there after a restart.
func TestInboundPeerRememberedWithListenAddrs(t *testing.T) {
	dir := t.TempDir()
	a := startNetwork(t, map[string]any{"data_dir": dir})
	dirB := t.TempDir()
	b := startNetwork(t, map[string]any{"data_dir": dirB, "listen": []any{"/ip4/127.0.0.1/tcp/" + closedPort(t)}})
	listenB := tcpAddr(t, b)
	idB := b.PeerID()
	connect(t, b, a) // b dials a: a sees b inbound
	waitFor(t, "a learns b's listen addresses", func() bool {
		return len(a.Host().Peerstore().Addrs(b.Host().ID())) > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, sdk.PeerInfo{ID: idB}); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = startNetwork(t, map[string]any{"data_dir": dirB, "listen": []any{listenB}})
	a = startNetwork(t, map[string]any{"data_dir": dir})
	waitFor(t, "a redials b after both restarted", func() bool { return connected(a, b) })
}

// TestRememberedPeerForgottenAfterLongFailure: a remembered peer that has
// not been connected for longer than forgetAfter is dropped, at its next
// failed dial and when the file is read back.
func TestRememberedPeerForgottenAfterLongFailure(t *testing.T) {
	n := startNetwork(t, nil)
	gone := peerIDForTest(t)
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/" + closedPort(t))
	tests := []struct {
		name    string
		last    time.Time
		forgets bool
	}{
		{"failing for a day", time.Now().Add(-24 * time.Hour), false},
		{"failing for two months", time.Now().Add(-60 * 24 * time.Hour), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), wantedPeersFile)
			if err := saveWantedPeers(path, []rememberedPeer{{AddrInfo: peer.AddrInfo{ID: gone, Addrs: []ma.Multiaddr{addr}}, lastConnected: tc.last}}); err != nil {
				t.Fatal(err)
			}
			r := newRedialer(n.Host(), n.gater, slog.New(slog.DiscardHandler), time.Minute, 8)
			r.file = path
			r.restore()
			if got := r.wanted() == 0; got != tc.forgets {
				t.Fatalf("forgotten on restore: %v, want %v", got, tc.forgets)
			}
			r.save(false)
			saved, _ := loadWantedPeers(path)
			if got := len(saved) == 0; got != tc.forgets {
				t.Fatalf("forgotten in the file: %v, want %v", got, tc.forgets)
			}
		})
	}
	// A peer remembered this run whose dials keep failing past forgetAfter.
	r := newRedialer(n.Host(), n.gater, slog.New(slog.DiscardHandler), time.Minute, 8)
	r.forgetAfter = time.Nanosecond
	r.want(peer.AddrInfo{ID: gone, Addrs: []ma.Multiaddr{addr}}, false, false)
	r.dialed(gone, time.Now(), os.ErrDeadlineExceeded)
	if r.wanted() != 0 {
		t.Fatal("a peer failing past forgetAfter is still wanted")
	}
}
