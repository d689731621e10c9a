package mdns

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/skein-p2p/skein/internal/netnstest"
	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// Every test here that opens a socket runs in a network namespace of its
// own (internal/netnstest): multicast DNS never runs in the machine's.

func TestMain(m *testing.M) {
	plugintest.Main(m, map[string]func() sdk.Plugin{ID: func() sdk.Plugin { return New() }})
}

// lanConfig uses both ends of netnstest.VethPair, with a short query
// interval.
var lanConfig = map[string]any{"interfaces": []any{"m0", "m1"}, "query_interval": "2s"}

// lanAddrs is an address on the veth pair's subnet: what the plugin
// passes on (a loopback address it would not).
var lanAddrs = []string{"/ip4/10.77.0.1/tcp/4001"}

func TestConformanceLinkedIn(t *testing.T) {
	if !netnstest.Enter(t, netnstest.VethPair) {
		return
	}
	a, b := New(), New()
	plugintest.StartLinked(t, a, lanConfig)
	plugintest.StartLinked(t, b, lanConfig)
	plugintest.TestDiscovery(t, func(testing.TB) (sdk.Discovery, sdk.Discovery) { return a, b }, plugintest.WithAdvertisedAddrs(lanAddrs...))
}

func TestConformanceOutOfProcess(t *testing.T) {
	if !netnstest.Enter(t, netnstest.VethPair) {
		return
	}
	discovery := func(rp *sdk.RemotePlugin) sdk.Discovery {
		d, ok := rp.Discovery()
		if !ok {
			t.Fatal("plugin does not serve a discovery")
		}
		return d
	}
	a := discovery(plugintest.StartProcess(t, ID, plugintest.WithConfig(lanConfig)))
	b := discovery(plugintest.StartProcess(t, ID, plugintest.WithConfig(lanConfig)))
	plugintest.TestDiscovery(t, func(testing.TB) (sdk.Discovery, sdk.Discovery) { return a, b }, plugintest.WithAdvertisedAddrs(lanAddrs...))
}

// TestConformanceBinary: the built cmd/skein-mdns serves the plugin.
func TestConformanceBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/skein-mdns")
	}
	if !netnstest.Enter(t, netnstest.VethPair) {
		return
	}
	bin := filepath.Join(t.TempDir(), "skein-mdns")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/skein-mdns").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	rp := plugintest.StartBinary(t, bin, plugintest.WithConfig(lanConfig))
	d, err := rp.Describe(context.Background())
	if err != nil || d.ID != ID {
		t.Fatalf("describe = %+v, %v", d, err)
	}
	a, _ := rp.Discovery()
	b := New()
	plugintest.StartLinked(t, b, lanConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Advertise(ctx, "ns", sdk.PeerInfo{ID: "binary", Addrs: lanAddrs}); err != nil {
		t.Fatal(err)
	}
	peers, err := b.FindPeers(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	for p := range peers {
		if p.ID == "binary" {
			return
		}
	}
	t.Fatal("the binary's advertisement was not found")
}

func TestLifecycle(t *testing.T) {
	if !netnstest.Enter(t, netnstest.VethPair) {
		return
	}
	plugintest.TestPlugin(t, func(testing.TB) sdk.Plugin { return New() })
}

// TestConfigureOutOfProcess: bad config comes back as diagnostics naming
// each key, across the wire; the plugin survives it. No socket is opened.
func TestConfigureOutOfProcess(t *testing.T) {
	rp := plugintest.StartProcess(t, ID, plugintest.WithoutStart())
	diags, err := rp.Configure(context.Background(), map[string]any{
		"service": "skein", "query_interval": "5ms", "max_cached_peers": 0, "interfaces": []any{"eth0", 7}, "nope": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, d := range diags {
		if d.Severity == sdk.SeverityError {
			keys[d.Key] = true
		}
	}
	for _, k := range []string{"service", "query_interval", "max_cached_peers", "interfaces[1]", "nope"} {
		if !keys[k] {
			t.Errorf("no error diagnostic for %s: %+v", k, diags)
		}
	}
	if _, err := rp.Describe(context.Background()); err != nil {
		t.Fatalf("plugin gone after a bad config: %v", err)
	}
}

// TestStartAbsentInterface: an interface named but absent is waited for,
// not an error; Status says so.
func TestStartAbsentInterface(t *testing.T) {
	if !netnstest.Enter(t, netnstest.VethPair) {
		return
	}
	p := New()
	plugintest.StartLinked(t, p, map[string]any{"interfaces": []any{"wlan7"}})
	st, err := p.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Healthy || st.Details["interfaces"] != "" {
		t.Fatalf("status %+v, want unhealthy with no interface", st)
	}
	// It comes up: joined at the next scan.
	netnstest.IP(t, "link", "add", "wlan7", "type", "veth", "peer", "name", "wlan7p")
	netnstest.IP(t, "addr", "add", "10.78.0.1/24", "dev", "wlan7")
	netnstest.IP(t, "link", "set", "wlan7", "up")
	netnstest.IP(t, "link", "set", "wlan7p", "up")
	deadline := time.Now().Add(3 * rescanEvery)
	for {
		st, _ := p.Status(context.Background())
		if st.Details["interfaces"] == "wlan7" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v: wlan7 never joined", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
