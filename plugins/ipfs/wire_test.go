package ipfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// wireChildEnv makes the test binary serve this plugin over the sdk wire,
// for the tests that run it out of process.
const wireChildEnv = "SKEIN_IPFS_WIRE_CHILD"

// init runs before TestMain: a child serves the real plugin and exits.
func init() {
	if os.Getenv(wireChildEnv) == "1" {
		sdk.Serve(New())
		os.Exit(0)
	}
}

// startWireNetwork runs this plugin out of process (the test binary
// re-executed) on loopback and returns its network as the host sees it.
func startWireNetwork(t testing.TB, cfg ...map[string]any) sdk.Network {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]any{"listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false}
	for _, c := range cfg {
		for k, v := range c {
			base[k] = v
		}
	}
	rp := plugintest.StartBinary(t, exe,
		plugintest.WithEnv(wireChildEnv+"=1", "GORACE=atexit_sleep_ms=0"),
		plugintest.WithConfig(base))
	n, ok := rp.Network()
	if !ok {
		t.Fatal("the ipfs plugin does not serve a network over the wire")
	}
	return n
}

// TestDirectRequestsAcrossTheWire runs one ipfs network linked in (a) and
// one out of process (b, reached through the sdk wire) and exchanges
// direct requests both ways: a request from a reaches b's plugin, which
// forwards it to the handler registered by b's host, and the answer goes
// back over libp2p; a request made by b's host goes out through b's
// plugin to a. Peer events and BlockPeer cross the wire too.
func TestDirectRequestsAcrossTheWire(t *testing.T) {
	a := startNetwork(t, nil)
	b := startWireNetwork(t)
	bd, ok := b.(sdk.DirectMessenger)
	if !ok {
		t.Fatal("remote network lacks DirectMessenger")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	events, err := b.(sdk.PeerNotifier).PeerEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, sdk.PeerInfo{ID: b.PeerID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect: %v", err)
	}
	waitEvent := func(want sdk.PeerEvent) {
		t.Helper()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("peer events closed before %+v", want)
				}
				if ev == want {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no peer event %+v", want)
			}
		}
	}
	waitEvent(sdk.PeerEvent{Peer: a.PeerID(), Connected: true})

	const toHost = "/skein/test/wire-host/1"
	if err := bd.HandleRequests(toHost, func(_ context.Context, from string, req []byte) ([]byte, error) {
		if from != a.PeerID() {
			return nil, errors.New("request from an unexpected peer")
		}
		if string(req) == "refuse" {
			return nil, errors.New("refused")
		}
		return append([]byte("b-host:"), req...), nil
	}); err != nil {
		t.Fatal(err)
	}
	const toA = "/skein/test/wire-a/1"
	if err := a.HandleRequests(toA, func(_ context.Context, from string, req []byte) ([]byte, error) {
		if from != b.PeerID() {
			return nil, errors.New("request from an unexpected peer")
		}
		return append([]byte("a:"), req...), nil
	}); err != nil {
		t.Fatal(err)
	}

	big := bytes.Repeat([]byte("z"), 1<<20)
	tests := []struct {
		name    string
		request func(ctx context.Context, req []byte) ([]byte, error)
		req     []byte
		want    string
		wantErr bool
	}{
		{"to the out-of-process host handler", func(ctx context.Context, req []byte) ([]byte, error) {
			return a.Request(ctx, b.PeerID(), toHost, req)
		}, []byte("hi"), "b-host:hi", false},
		{"large to the host handler", func(ctx context.Context, req []byte) ([]byte, error) {
			return a.Request(ctx, b.PeerID(), toHost, req)
		}, big, "b-host:" + string(big), false},
		{"host handler refuses", func(ctx context.Context, req []byte) ([]byte, error) {
			return a.Request(ctx, b.PeerID(), toHost, req)
		}, []byte("refuse"), "", true},
		{"from the host through the plugin", func(ctx context.Context, req []byte) ([]byte, error) {
			return bd.Request(ctx, a.PeerID(), toA, req)
		}, []byte("yo"), "a:yo", false},
		{"from the host, unhandled protocol", func(ctx context.Context, req []byte) ([]byte, error) {
			return bd.Request(ctx, a.PeerID(), "/skein/test/none/1", req)
		}, []byte("x"), "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			got, err := tc.request(rctx, tc.req)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %d bytes", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got %d bytes (%.20q), want %d", len(got), got, len(tc.want))
			}
		})
	}

	t.Run("removed host handler", func(t *testing.T) {
		if err := bd.HandleRequests(toHost, nil); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := a.Request(rctx, b.PeerID(), toHost, []byte("x")); err == nil {
			t.Fatal("request answered after the host removed its handler")
		}
	})

	t.Run("block peer across the wire", func(t *testing.T) {
		if err := b.(sdk.PeerBlocker).BlockPeer(ctx, a.PeerID(), "test", time.Minute); err != nil {
			t.Fatal(err)
		}
		waitEvent(sdk.PeerEvent{Peer: a.PeerID(), Connected: false})
		peers, err := b.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range peers {
			if p.ID == a.PeerID() {
				t.Fatal("blocked peer still connected")
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := b.Connect(rctx, sdk.PeerInfo{ID: a.PeerID(), Addrs: a.Addrs()}); err == nil {
			t.Fatal("b dialled a peer it blocked")
		}
	})
}

// TestTopicCapabilitiesConformance runs plugintest's suite of TopicGate,
// TopicValidator and PeerScorer on two networks linked in, and on two
// out of process (every call, and every validation, over the sdk wire).
func TestTopicCapabilitiesConformance(t *testing.T) {
	generic := map[string]any{"pubsub_validation": PubsubValidationNone} // the suite publishes raw bytes
	t.Run("linked", func(t *testing.T) {
		plugintest.TestNetworkTopics(t, func(t testing.TB) (sdk.Network, sdk.Network) {
			return startNetwork(t, generic), startNetwork(t, generic)
		})
	})
	t.Run("process", func(t *testing.T) {
		plugintest.TestNetworkTopics(t, func(t testing.TB) (sdk.Network, sdk.Network) {
			return startWireNetwork(t, generic), startWireNetwork(t, generic)
		})
	})
}
