package plugintest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// DiscoveryOption adjusts the discovery conformance suite.
type DiscoveryOption func(*discoveryConfig)

type discoveryConfig struct {
	addrs [][]string // the addresses of the peers advertised, case by case
}

// WithAdvertisedAddrs makes every peer the suite advertises carry addrs
// (which a finder must get back as given), for a discovery that passes
// on only addresses its medium can reach: a LAN discovery announces no
// loopback address, say. Default: loopback addresses, and none for one
// case.
func WithAdvertisedAddrs(addrs ...string) DiscoveryOption {
	return func(c *discoveryConfig) {
		c.addrs = [][]string{addrs, addrs, addrs}
	}
}

// TestDiscovery runs the discovery conformance suite. open returns two
// started discoveries that share a medium (a, b may be the same value):
// what a advertises, b must find.
func TestDiscovery(t *testing.T, open func(t testing.TB) (a, b sdk.Discovery), opts ...DiscoveryOption) {
	t.Helper()
	cfg := discoveryConfig{addrs: [][]string{{"/ip4/127.0.0.1/tcp/4001"}, {"/ip4/127.0.0.1/tcp/4002"}, nil}}
	for _, o := range opts {
		o(&cfg)
	}
	cases := []struct {
		name string
		run  func(t *testing.T, a, b sdk.Discovery)
	}{
		{"AdvertiseThenFind", func(t *testing.T, a, b sdk.Discovery) {
			ctx := testCtx(t)
			self := sdk.PeerInfo{ID: "peer-" + t.Name(), Addrs: cfg.addrs[0]}
			if err := a.Advertise(ctx, "ns-1", self); err != nil {
				t.Fatalf("advertise: %v", err)
			}
			waitForPeer(t, b, "ns-1", self)
		}},
		{"FindThenAdvertise", func(t *testing.T, a, b sdk.Discovery) {
			ctx := testCtx(t)
			fctx, cancel := context.WithCancel(ctx)
			defer cancel()
			peers, err := b.FindPeers(fctx, "ns-2")
			if err != nil {
				t.Fatalf("find peers: %v", err)
			}
			self := sdk.PeerInfo{ID: "late-" + t.Name(), Addrs: cfg.addrs[1]}
			if err := a.Advertise(ctx, "ns-2", self); err != nil {
				t.Fatalf("advertise: %v", err)
			}
			for {
				select {
				case p, ok := <-peers:
					if !ok {
						t.Fatal("peer channel closed before the advertised peer appeared")
					}
					if p.ID == self.ID {
						if !slices.Equal(p.Addrs, self.Addrs) {
							t.Fatalf("found %+v, want %+v", p, self)
						}
						return
					}
				case <-ctx.Done():
					t.Fatal("advertised peer never found")
				}
			}
		}},
		{"NamespacesAreSeparate", func(t *testing.T, a, b sdk.Discovery) {
			ctx := testCtx(t)
			self := sdk.PeerInfo{ID: "ns-peer-" + t.Name(), Addrs: cfg.addrs[2]}
			if err := a.Advertise(ctx, "ns-a", self); err != nil {
				t.Fatalf("advertise: %v", err)
			}
			waitForPeer(t, b, "ns-a", self)
			fctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			peers, err := b.FindPeers(fctx, "ns-b")
			if err != nil {
				t.Fatalf("find peers: %v", err)
			}
			for p := range peers {
				if p.ID == self.ID {
					t.Fatalf("peer advertised under ns-a found under ns-b")
				}
			}
		}},
		{"FindPeersEndsWithContext", func(t *testing.T, _, b sdk.Discovery) {
			ctx, cancel := context.WithCancel(testCtx(t))
			peers, err := b.FindPeers(ctx, "ns-end")
			if err != nil {
				t.Fatalf("find peers: %v", err)
			}
			cancel()
			deadline := testCtx(t)
			for {
				select {
				case _, ok := <-peers:
					if !ok {
						return
					}
				case <-deadline.Done():
					t.Fatal("peer channel not closed after the context ended")
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t)
			tc.run(t, a, b)
		})
	}
}

func waitForPeer(t *testing.T, d sdk.Discovery, ns string, want sdk.PeerInfo) {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	peers, err := d.FindPeers(ctx, ns)
	if err != nil {
		t.Fatalf("find peers: %v", err)
	}
	for p := range peers {
		if p.ID == want.ID {
			if !slices.Equal(p.Addrs, want.Addrs) {
				t.Fatalf("found %+v, want %+v", p, want)
			}
			return
		}
	}
	t.Fatalf("peer %s never found under %s", want.ID, ns)
}

// TestPlugin runs the lifecycle conformance suite on a fresh plugin value
// from open (not yet configured or started): Describe is well formed,
// Configure of an empty config succeeds, a config of the wrong shape gives
// diagnostics or an error but never a crash, Stop before Start and a second
// Stop succeed.
func TestPlugin(t *testing.T, open func(t testing.TB) sdk.Plugin) {
	t.Helper()
	t.Run("Describe", func(t *testing.T) {
		p := open(t)
		d, err := p.Describe(testCtx(t))
		if err != nil {
			t.Fatalf("describe: %v", err)
		}
		if d.ID == "" || d.Version == "" || len(d.Kinds) == 0 {
			t.Fatalf("description lacks id, version or kinds: %+v", d)
		}
		for _, k := range d.Kinds {
			switch k {
			case sdk.KindStore, sdk.KindTransport, sdk.KindDiscovery, sdk.KindNetwork:
			default:
				t.Fatalf("unknown kind %q", k)
			}
		}
		for _, c := range d.ConfigSchema {
			if c.Key == "" {
				t.Fatalf("config schema entry without a key: %+v", c)
			}
		}
	})
	t.Run("ConfigureBadShapes", func(t *testing.T) {
		p := open(t)
		bad := []map[string]any{
			{"no-such-key-anywhere": true},
			{"nested": map[string]any{"deep": []any{1, "two", nil}}},
		}
		for _, cfg := range bad {
			diags, err := p.Configure(testCtx(t), cfg)
			if err == nil && len(diags) == 0 {
				t.Fatalf("configure %v: accepted silently, want a diagnostic or an error", cfg)
			}
		}
	})
	t.Run("StartStop", func(t *testing.T) {
		p := open(t)
		if err := p.Stop(testCtx(t)); err != nil {
			t.Fatalf("stop before start: %v", err)
		}
		diags, err := p.Configure(testCtx(t), map[string]any{})
		if err != nil {
			t.Fatalf("configure empty: %v", err)
		}
		for _, d := range diags {
			if d.Severity == sdk.SeverityError {
				t.Fatalf("configure empty: %s: %s", d.Key, d.Message)
			}
		}
		if err := p.Start(testCtx(t)); err != nil {
			t.Fatalf("start: %v", err)
		}
		for i := range 2 {
			if err := p.Stop(testCtx(t)); err != nil {
				t.Fatalf("stop %d: %v", i+1, err)
			}
		}
	})
}
