package ble

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// TestConformanceSimHub: the transport suite over a device whose medium
// is served by a hub (this process serves it, as the first to name it).
func TestConformanceSimHub(t *testing.T) {
	p := New()
	plugintest.StartLinked(t, p, simConfig("", "sim_hub", filepath.Join(t.TempDir(), "hub")))
	plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return p, "" })
}

// TestSimHubAcrossProcesses: two plugin processes naming one sim_hub
// share a medium: each finds the other by advertisement and identity
// read, and a link between them carries data both ways.
func TestSimHubAcrossProcesses(t *testing.T) {
	hub := filepath.Join(t.TempDir(), "hub")
	medium := newMedium()
	start := func() (sdk.Transport, sdk.Discovery) {
		rp := plugintest.StartProcess(t, ID, plugintest.WithConfig(simConfig(medium, "sim_hub", hub, "tie_break_wait", "0s")))
		tr, ok := rp.Transport()
		if !ok {
			t.Fatal("plugin does not serve a transport")
		}
		d, ok := rp.Discovery()
		if !ok {
			t.Fatal("plugin does not serve discovery")
		}
		return tr, d
	}
	trA, dA := start()
	trB, dB := start()
	listen := func(tr sdk.Transport, d sdk.Discovery, id string) (sdk.Listener, string) {
		l, err := tr.Listen(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		if err := d.Advertise(t.Context(), "ns", sdk.PeerInfo{ID: id}); err != nil {
			t.Fatal(err)
		}
		return l, "/" + Protocol + "/" + l.Addr()
	}
	_, addrA := listen(trA, dA, "peer-a")
	lB, addrB := listen(trB, dB, "peer-b")

	var got []sdk.PeerInfo
	for range 20 {
		if got = found(t, dA, "ns", time.Second); hasPeer(got, "peer-b", addrB) {
			break
		}
	}
	if !hasPeer(got, "peer-b", addrB) {
		t.Fatalf("process A did not find B through the hub: %+v", got)
	}
	for range 20 {
		if got = found(t, dB, "ns", time.Second); hasPeer(got, "peer-a", addrA) {
			break
		}
	}
	if !hasPeer(got, "peer-a", addrA) {
		t.Fatalf("process B did not find A through the hub: %+v", got)
	}

	in := accept(t, lB)
	_, dialB, _ := strings.Cut(addrB, "/"+Protocol+"/")
	c, err := trA.Dial(t.Context(), dialB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cb, ok := <-in
	if !ok {
		t.Fatal("B accepted nothing")
	}
	msg := bytes.Repeat([]byte("skein over a shared medium "), 400) // ~11 KB: many packets
	go func() { _, _ = c.Write(msg) }()
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(cb, buf); err != nil || !bytes.Equal(buf, msg) {
		t.Fatalf("A to B: %v", err)
	}
	go func() { _, _ = cb.Write(msg[:1000]) }()
	if _, err := io.ReadFull(c, buf[:1000]); err != nil || !bytes.Equal(buf[:1000], msg[:1000]) {
		t.Fatalf("B to A: %v", err)
	}
}

// FuzzHubRead: the hub's decoder gives an error, never a crash, on any
// bytes, and what it accepts re-encodes to the same bytes.
func FuzzHubRead(f *testing.F) {
	var b bytes.Buffer
	_ = hubWriteJSON(&b, hubMsg{Op: "dial", Addr: "sim-1@128"})
	f.Add(b.Bytes())
	f.Add([]byte{0, 0, 0, 3, hubKindData, 1, 2})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		k, p, err := hubRead(bytes.NewReader(in))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := hubWrite(&out, k, p); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("re-encoded %x, read from %x", out.Bytes(), in)
		}
		_, _ = hubReadJSON(bytes.NewReader(in))
	})
}
