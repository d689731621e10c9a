package ble

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

func TestMain(m *testing.M) {
	plugintest.Main(m, map[string]func() sdk.Plugin{ID: func() sdk.Plugin { return New() }})
}

var mediumSeq atomic.Int64

// simConfig is a sim device on a medium of its own (unless medium is
// given), with fast figures: the conformance suite moves megabytes.
func simConfig(medium string, kv ...any) map[string]any {
	if medium == "" {
		medium = fmt.Sprintf("test-%d", mediumSeq.Add(1))
	}
	cfg := map[string]any{"driver": "sim", "sim_medium": medium, "sim_bandwidth": 0, "sim_latency": "1ms",
		"sim_mtu": 185, "sim_advertise_interval": "20ms", "report_interval": "500ms", "max_links": 64, "sim_max_links": 64}
	for i := 0; i+1 < len(kv); i += 2 {
		cfg[kv[i].(string)] = kv[i+1]
	}
	return cfg
}

func TestConformanceSimLinkedIn(t *testing.T) {
	for _, mtu := range []int{23, 185, 517} {
		t.Run(fmt.Sprintf("mtu%d", mtu), func(t *testing.T) {
			p := New()
			plugintest.StartLinked(t, p, simConfig("", "sim_mtu", mtu))
			plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return p, "" })
		})
	}
}

func TestConformanceSimOutOfProcess(t *testing.T) {
	for _, plane := range []sdk.DataPlane{sdk.DataPlaneSocket, sdk.DataPlaneStream} {
		t.Run(plane.String(), func(t *testing.T) {
			rp := plugintest.StartProcess(t, ID, plugintest.WithConfig(simConfig("")), plugintest.WithDataPlane(plane))
			tr, ok := rp.Transport()
			if !ok {
				t.Fatal("plugin does not serve a transport")
			}
			if _, ok := tr.(sdk.PacketTransport); !ok {
				t.Fatal("the remote transport has no packet profile")
			}
			plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return tr, "" })
		})
	}
}

// TestConformanceBinary: the built cmd/skein-ble serves the plugin.
func TestConformanceBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/skein-ble")
	}
	bin := filepath.Join(t.TempDir(), "skein-ble")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/skein-ble").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	rp := plugintest.StartBinary(t, bin, plugintest.WithConfig(simConfig("")))
	d, err := rp.Describe(context.Background())
	if err != nil || d.ID != ID {
		t.Fatalf("describe = %+v, %v", d, err)
	}
	tr, _ := rp.Transport()
	plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return tr, "" })
}

func TestDiscoveryConformanceSim(t *testing.T) {
	medium := fmt.Sprintf("disc-%d", mediumSeq.Add(1))
	a, b := New(), New()
	plugintest.StartLinked(t, a, simConfig(medium))
	plugintest.StartLinked(t, b, simConfig(medium))
	l, err := a.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	addrs := []string{"/" + Protocol + "/" + l.Addr()}
	plugintest.TestDiscovery(t, func(testing.TB) (sdk.Discovery, sdk.Discovery) { return a, b }, plugintest.WithAdvertisedAddrs(addrs...))
}

// TestDiscoverySimOutOfProcess: Advertise and FindPeers cross the wire
// (a sim medium lives in one process, so the finder is not another
// plugin process here: the in-process tests cover finding).
func TestDiscoverySimOutOfProcess(t *testing.T) {
	rp := plugintest.StartProcess(t, ID, plugintest.WithConfig(simConfig("")))
	d, ok := rp.Discovery()
	if !ok {
		t.Fatal("plugin does not serve a discovery")
	}
	tr, _ := rp.Transport()
	ctx := t.Context()
	if err := d.Advertise(ctx, "ns", sdk.PeerInfo{ID: "remote-peer"}); err == nil {
		t.Fatal("advertise with no listener succeeded")
	}
	l, err := tr.Listen(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if err := d.Advertise(ctx, "ns", sdk.PeerInfo{ID: "remote-peer"}); err != nil {
		t.Fatalf("advertise over the wire: %v", err)
	}
	fctx, cancel := context.WithCancel(ctx)
	peers, err := d.FindPeers(fctx, "ns")
	if err != nil {
		t.Fatalf("find peers over the wire: %v", err)
	}
	cancel()
	for range peers {
	}
}

func TestLifecycle(t *testing.T) {
	plugintest.TestPlugin(t, func(testing.TB) sdk.Plugin { return New() })
}

// TestConformanceSimGATTFallback: the suite over the GATT byte stream
// (the device refuses L2CAP channels; packets come out of order).
func TestConformanceSimGATTFallback(t *testing.T) {
	p := New()
	plugintest.StartLinked(t, p, simConfig("", "sim_channels", false))
	plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return p, "" })
}
