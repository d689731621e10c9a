package ipfs

import (
	"context"
	"errors"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// portOf returns the port of a's first listen address on the transport
// that ends with suffix ("tcp", "quic-v1", "ws").
func portOf(t testing.TB, n *Network, suffix string) string {
	t.Helper()
	for _, s := range n.Addrs() {
		m, err := ma.NewMultiaddr(strings.SplitN(s, "/p2p/", 2)[0])
		if err != nil || len(m) < 2 || m[len(m)-1].Protocol().Name != suffix {
			continue
		}
		return m[1].Value()
	}
	t.Fatalf("no /%s address in %v", suffix, n.Addrs())
	return ""
}

// TestListenPortHeldByAnotherNode: a node whose listen port another node
// holds does not start (libp2p's TCP would have shared the port through
// SO_REUSEPORT; a QUIC or WebSocket listener would have gone missing
// without a word); the error names the address and the port. With port 0
// two nodes each get their own free ports on every transport.
func TestListenPortHeldByAnotherNode(t *testing.T) {
	first := startNetwork(t, map[string]any{"listen": []any{
		"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0/ws",
	}})
	tcp, quic, ws := portOf(t, first, "tcp"), portOf(t, first, "quic-v1"), portOf(t, first, "ws")
	tests := []struct {
		name   string
		listen []any
		want   string
	}{
		{"same tcp port", []any{"/ip4/127.0.0.1/tcp/" + tcp}, "tcp port " + tcp + " is already in use"},
		{"same tcp port, all interfaces", []any{"/ip4/0.0.0.0/tcp/" + tcp}, "tcp port " + tcp + " is already in use"},
		{"tcp free, quic taken", []any{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/" + quic + "/quic-v1"}, "udp port " + quic + " is already in use"},
		{"tcp free, websocket taken", []any{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/" + ws + "/ws"}, "tcp port " + ws + " is already in use"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := New()
			diags, err := n.Configure(context.Background(), map[string]any{"listen": tc.listen, "dht_mode": "off", "relay": false})
			if err != nil || len(diags) > 0 {
				t.Fatalf("configure: %v %v", diags, err)
			}
			err = n.Start(context.Background())
			defer n.Stop(context.Background())
			if !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "port 0 for any free port") {
				t.Fatalf("Start = %v, want ErrPortInUse saying %q", err, tc.want)
			}
		})
	}
	t.Run("any free port", func(t *testing.T) {
		free := []any{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0/ws"}
		a, b := startNetwork(t, map[string]any{"listen": free}), startNetwork(t, map[string]any{"listen": free})
		for _, tr := range []string{"tcp", "quic-v1", "ws"} {
			if portOf(t, a, tr) == portOf(t, b, tr) {
				t.Errorf("both nodes on %s port %s", tr, portOf(t, a, tr))
			}
		}
		connect(t, a, b)
	})
}
