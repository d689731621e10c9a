package ipfs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/skein-p2p/skein/sdk"
)

// A peer the node was asked to connect to is dialled again after the node
// restarts, with no new Connect: it is remembered in the data directory.
func TestConnectedPeerIsRedialledAfterOwnRestart(t *testing.T) {
	dirA := t.TempDir()
	b := startNetwork(t, nil)
	a := New()
	if _, err := a.Configure(context.Background(), map[string]any{"data_dir": dirA, "listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false}); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	connect(t, a, b)
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dirA, wantedPeersFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no wanted peers file after a Connect and a stop: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}

	a = startNetwork(t, map[string]any{"data_dir": dirA})
	waitFor(t, "the restarted node redialled the remembered peer", func() bool { return connected(a, b) })
	if got := statusDetail(t, a, "wanted"); got != "1" {
		t.Fatalf("status wanted = %q, want 1", got)
	}
}

func TestWantedPeersFile(t *testing.T) {
	id1, id2 := "12D3KooWPjceQrSwdWXPyLLeABRXmuqt69Rg3sBYbU1Nft9HyQ6X", "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	tests := []struct {
		name    string
		content string // "" : no file
		want    []string
		errs    []string
	}{
		{name: "no file"},
		{name: "not json", content: "{", errs: []string{"unexpected end of JSON input"}},
		{name: "unknown version", content: `{"version": 2, "peers": []}`, errs: []string{"unknown version 2"}},
		{name: "bad entries skipped", content: `{"version": 1, "peers": [
			{"id": "not a peer id", "addrs": []},
			{"id": "` + id1 + `", "addrs": ["/ip4/127.0.0.1/tcp/4001", "/not-a-protocol/1"]},
			{"id": "` + id2 + `", "addrs": []}]}`,
			want: []string{id1 + " [/ip4/127.0.0.1/tcp/4001]", id2 + " []"},
			errs: []string{"peer 0", "peer 1: address \"/not-a-protocol/1\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), wantedPeersFile)
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			infos, errs := loadWantedPeers(path)
			var got []string
			for _, in := range infos {
				got = append(got, in.ID.String()+" "+fmtAddrs(in.Addrs))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("peers = %q, want %q", got, tt.want)
			}
			if len(errs) != len(tt.errs) {
				t.Fatalf("errors = %v, want %d", errs, len(tt.errs))
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.errs[i]) {
					t.Fatalf("error %d = %v, want it to mention %q", i, e, tt.errs[i])
				}
			}
		})
	}

	// What is saved is read back.
	path := filepath.Join(t.TempDir(), wantedPeersFile)
	p1, _ := peer.Decode(id1)
	last := time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)
	in := []rememberedPeer{{AddrInfo: peer.AddrInfo{ID: p1, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/10.0.0.1/udp/4001/quic-v1")}}, lastConnected: last}}
	if err := saveWantedPeers(path, in); err != nil {
		t.Fatal(err)
	}
	out, errs := loadWantedPeers(path)
	if len(errs) != 0 || len(out) != 1 || out[0].ID != p1 || !out[0].Addrs[0].Equal(in[0].Addrs[0]) || !out[0].lastConnected.Equal(last) {
		t.Fatalf("round trip: %v %v", out, errs)
	}
}

func fmtAddrs(as []ma.Multiaddr) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

// A peer that could not be reached is not remembered: only peers the node
// connected to are wanted (and written down).
func TestUnreachablePeerIsNotWanted(t *testing.T) {
	a := startNetwork(t, map[string]any{"data_dir": t.TempDir()})
	gone := startNetwork(t, nil)
	info := sdk.PeerInfo{ID: gone.PeerID(), Addrs: gone.Addrs()}
	if err := gone.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, info); err == nil {
		t.Fatal("connected to a stopped peer")
	}
	if got := statusDetail(t, a, "wanted"); got != "0" {
		t.Fatalf("status wanted = %q after a failed connect, want 0", got)
	}
}

// FuzzLoadWantedPeers: whatever the file holds, loading it returns peers
// and errors, never panics, and what it returns saves and loads back the
// same.
func FuzzLoadWantedPeers(f *testing.F) {
	f.Add([]byte(`{"version":1,"peers":[{"id":"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA","addrs":["/ip4/10.0.0.1/tcp/4001"],"last_connected":"2026-12-05T07:00:00Z"}]}`))
	f.Add([]byte(`{"version":1,"peers":[{"id":"x","addrs":["nope"],"last_connected":"yesterday"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), wantedPeersFile)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		peers, _ := loadWantedPeers(path)
		if err := saveWantedPeers(path, peers); err != nil {
			t.Fatal(err)
		}
		again, errs := loadWantedPeers(path)
		if len(errs) != 0 || len(again) != len(peers) {
			t.Fatalf("round trip of %d peers: %d back, %v", len(peers), len(again), errs)
		}
		for i := range peers {
			if again[i].ID != peers[i].ID || !again[i].lastConnected.Equal(peers[i].lastConnected) || len(again[i].Addrs) != len(peers[i].Addrs) {
				t.Fatalf("peer %d: %+v back as %+v", i, peers[i], again[i])
			}
		}
	})
}
