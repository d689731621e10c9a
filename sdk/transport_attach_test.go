package sdk_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// transportEndpoint starts the "radio" transport plugin (a MemTransport)
// in a child process and returns its endpoint.
func transportEndpoint(t testing.TB, plane sdk.DataPlane) sdk.TransportEndpoint {
	t.Helper()
	_, client := plugintest.StartProcessWithClient(t, "radio", plugintest.WithDataPlane(plane))
	rc := client.ReattachConfig()
	if rc == nil || rc.Addr == nil {
		t.Fatal("no plugin address")
	}
	return sdk.TransportEndpoint{Network: rc.Addr.Network(), Address: rc.Addr.String(), Protocol: "x-memory", DataPlane: plane}
}

// TestDialTransportPassesConformance reaches a transport plugin's endpoint
// directly, as a network plugin process does, and runs the transport
// conformance suite over what it gets.
func TestDialTransportPassesConformance(t *testing.T) {
	cases := []struct {
		name  string
		plane sdk.DataPlane
	}{
		{"socket plane", sdk.DataPlaneSocket},
		{"stream plane", sdk.DataPlaneStream},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ep := transportEndpoint(t, tc.plane)
			tr, closeFn, err := sdk.DialTransport(ctxT(t), ep)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = closeFn() })
			if _, ok := tr.(sdk.PacketTransport); !ok {
				t.Error("the radio's packet profile was lost")
			}
			plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return tr, "" })
		})
	}
}

func TestDialTransportRefusesBadEndpoints(t *testing.T) {
	good := transportEndpoint(t, sdk.DataPlaneSocket)
	cases := []struct {
		name    string
		ep      func() sdk.TransportEndpoint
		invalid bool // a caller mistake (sdk.ErrInvalidArgument)
	}{
		{"wrong protocol", func() sdk.TransportEndpoint { e := good; e.Protocol = "x-other"; return e }, false},
		{"relative unix path", func() sdk.TransportEndpoint { e := good; e.Address = "rel/plugin.sock"; return e }, true},
		{"tcp not on loopback", func() sdk.TransportEndpoint {
			return sdk.TransportEndpoint{Network: "tcp", Address: "192.0.2.1:1234", Protocol: "x-memory"}
		}, true},
		{"unknown network", func() sdk.TransportEndpoint { e := good; e.Network = "udp"; return e }, true},
		{"no protocol", func() sdk.TransportEndpoint { e := good; e.Protocol = ""; return e }, true},
		{"unknown data plane", func() sdk.TransportEndpoint { e := good; e.DataPlane = 7; return e }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, closeFn, err := sdk.DialTransport(ctxT(t), tc.ep())
			if err == nil {
				_ = closeFn()
				t.Fatal("dial succeeded")
			}
			if errors.Is(err, sdk.ErrInvalidArgument) != tc.invalid {
				t.Fatalf("err = %v; want invalid argument: %v", err, tc.invalid)
			}
		})
	}
}

// TestListenersDieWithTheirClient: a listener made through one client
// connection to a transport plugin is closed when that connection ends,
// so a second client can listen on the same address.
func TestListenersDieWithTheirClient(t *testing.T) {
	ep := transportEndpoint(t, sdk.DataPlaneSocket)
	ctx := ctxT(t)
	first, closeFirst, err := sdk.DialTransport(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Listen(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	second, closeSecond, err := sdk.DialTransport(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSecond()
	if _, err := second.Listen(ctx, "shared"); err == nil {
		t.Fatal("second listen on a taken address succeeded")
	}
	if err := closeFirst(); err != nil {
		t.Fatal(err)
	}
	for {
		l, err := second.Listen(ctx, "shared")
		if err == nil {
			_ = l.Close()
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("address still taken after its client left: %v", err)
		case <-time.After(10 * time.Millisecond): // polling a condition
		}
	}
}

// TestRemoteNetworkRefusesTransportWithoutEndpoint: a network in a plugin
// process cannot take a transport of this process (its bytes would pass
// through the host).
func TestRemoteNetworkRefusesTransportWithoutEndpoint(t *testing.T) {
	rp := plugintest.StartProcess(t, "network")
	nw, ok := rp.Network()
	if !ok {
		t.Fatal("no network")
	}
	ta, ok := nw.(sdk.TransportAttacher)
	if !ok {
		t.Fatal("remote network lacks TransportAttacher methods")
	}
	err := ta.AttachTransport(context.Background(), "mem", plugintest.NewMemTransport())
	if !errors.Is(err, sdk.ErrCapabilityNotServed) && !errors.Is(err, sdk.ErrNoTransportEndpoint) {
		t.Fatalf("err = %v, want ErrCapabilityNotServed or ErrNoTransportEndpoint", err)
	}
}
