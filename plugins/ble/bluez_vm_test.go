//go:build linux

package ble

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// The tests on the real Linux Bluetooth stack. They run in the QEMU guest
// of scripts/ble-vm/run.sh (BlueZ and two virtual controllers, hci0 and
// hci1), which sets SKEIN_BLE_ADAPTERS=hci0,hci1; elsewhere they skip.

func bluezPair(t *testing.T) (a, b *Plugin) {
	t.Helper()
	return bluezPairWith(t, nil)
}

// bluezPairWith starts a on the first adapter and b on the second, with
// extra keys in b's config.
func bluezPairWith(t *testing.T, bKeys map[string]any) (a, b *Plugin) {
	t.Helper()
	ads := strings.Split(os.Getenv("SKEIN_BLE_ADAPTERS"), ",")
	if len(ads) != 2 || ads[0] == "" {
		t.Skip("SKEIN_BLE_ADAPTERS (two adapters of a real stack) not set: scripts/ble-vm/run.sh sets it in its guest")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, b = New(WithLogger(logger.With("side", "a"))), New(WithLogger(logger.With("side", "b")))
	plugintest.StartLinked(t, a, map[string]any{"driver": "bluez", "adapter": ads[0], "max_links": 32, "report_interval": "1s", "tie_break_wait": "0s"})
	cfgB := map[string]any{"driver": "bluez", "adapter": ads[1], "max_links": 32, "report_interval": "1s", "tie_break_wait": "0s"}
	for k, v := range bKeys {
		cfgB[k] = v
	}
	plugintest.StartLinked(t, b, cfgB)
	return a, b
}

// crossTransport listens on one plugin and dials from the other: a radio
// cannot connect to itself.
type crossTransport struct{ listen, dial sdk.Transport }

func (c crossTransport) Protocol() string { return c.listen.Protocol() }
func (c crossTransport) Listen(ctx context.Context, addr string) (sdk.Listener, error) {
	return c.listen.Listen(ctx, addr)
}
func (c crossTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return c.dial.Dial(ctx, addr)
}

func TestBlueZConformance(t *testing.T) {
	a, b := bluezPair(t)
	plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return crossTransport{listen: a, dial: b}, "" })
}

// TestBlueZConformanceOutOfProcess: the suite against two plugin
// processes (this test binary serving the plugin), one per adapter, over
// the socket data plane.
func TestBlueZConformanceOutOfProcess(t *testing.T) {
	ads := strings.Split(os.Getenv("SKEIN_BLE_ADAPTERS"), ",")
	if len(ads) != 2 || ads[0] == "" {
		t.Skip("SKEIN_BLE_ADAPTERS (two adapters of a real stack) not set: scripts/ble-vm/run.sh sets it in its guest")
	}
	var trs []sdk.Transport
	for _, ad := range ads {
		rp := plugintest.StartProcess(t, ID, plugintest.WithConfig(map[string]any{"driver": "bluez", "adapter": ad, "max_links": 32,
			"report_interval": "1s", "tie_break_wait": "0s"}))
		tr, ok := rp.Transport()
		if !ok {
			t.Fatal("plugin does not serve a transport")
		}
		trs = append(trs, tr)
	}
	plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return crossTransport{listen: trs[0], dial: trs[1]}, "" })
}

// TestBlueZDiscovery: b finds a's advertisement by scanning, reads its
// identity over GATT and reports a dialable /x-ble address; b dials it.
func TestBlueZDiscovery(t *testing.T) {
	a, b := bluezPair(t)
	l, err := a.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	began := time.Now()
	if err := a.Advertise(ctx, "skein/v1", sdk.PeerInfo{ID: "peer-a-in-the-guest"}); err != nil {
		t.Fatal(err)
	}
	peers, err := b.FindPeers(ctx, "skein/v1")
	if err != nil {
		t.Fatal(err)
	}
	for p := range peers {
		if p.ID != "peer-a-in-the-guest" {
			continue
		}
		t.Logf("FIGURE discovery (advertise, scan, GATT identity read): %s", time.Since(began).Round(time.Millisecond))
		want := "/" + Protocol + "/" + l.Addr()
		if len(p.Addrs) != 1 || p.Addrs[0] != want {
			t.Fatalf("found %+v, want address %s", p, want)
		}
		go func() {
			if c, err := l.Accept(ctx); err == nil {
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}
		}()
		c, err := dialRetrying(t, b, l.Addr())
		if err != nil {
			t.Fatalf("dial the address found: %v", err)
		}
		_ = c.Close()
		return
	}
	t.Fatal("a's advertisement never found")
}

// TestBlueZFigures measures connect time and a 200 KB echo over an L2CAP
// channel in the guest (CPU-bound emulation: not a radio's figures).
func TestBlueZFigures(t *testing.T) {
	a, b := bluezPair(t)
	l, err := a.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept(t.Context())
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	var connects, echoes []time.Duration
	for range 3 {
		t0 := time.Now()
		c, err := dialRetrying(t, b, l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		connects = append(connects, time.Since(t0))
		msg := make([]byte, 200<<10)
		for i := range msg {
			msg[i] = byte(i * 7)
		}
		t1 := time.Now()
		go func() { _, _ = c.Write(msg) }()
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		echoes = append(echoes, time.Since(t1))
		_ = c.Close()
	}
	sort.Slice(connects, func(i, j int) bool { return connects[i] < connects[j] })
	sort.Slice(echoes, func(i, j int) bool { return echoes[i] < echoes[j] })
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("FIGURE L2CAP connect min %s median %s max %s (3 dials); guest load average %s", connects[0].Round(time.Millisecond), connects[1].Round(time.Millisecond), connects[2].Round(time.Millisecond), strings.TrimSpace(string(load)))
	t.Logf("FIGURE 200 KB echo over L2CAP min %s median %s max %s", echoes[0].Round(time.Millisecond), echoes[1].Round(time.Millisecond), echoes[2].Round(time.Millisecond))
}

// dialRetrying dials as the node does: a refused first channel (seen once
// in a while right after the controllers come up) is tried again after
// the plugin's backoff.
func dialRetrying(t *testing.T, p *Plugin, addr string) (net.Conn, error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := p.Dial(t.Context(), addr)
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		t.Logf("dial %s: %v; again", addr, err)
		time.Sleep(500 * time.Millisecond)
	}
}

// TestBlueZGATTFallback: b dials a over the GATT byte stream (gatt_only:
// as when a refuses L2CAP channels): b finds a by scanning, opens the
// stream (RX written without response, TX notified), echoes 16 KB and
// closes; a's side reads the end. Figures: open time and the echo.
func TestBlueZGATTFallback(t *testing.T) {
	a, b := bluezPairWith(t, map[string]any{"gatt_only": true})
	l, err := a.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Second)
	defer cancel()
	if err := a.Advertise(ctx, "skein/v1", sdk.PeerInfo{ID: "peer-a-gatt"}); err != nil {
		t.Fatal(err)
	}
	peers, err := b.FindPeers(ctx, "skein/v1")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for p := range peers {
		if p.ID == "peer-a-gatt" {
			found = true
			break
		}
	}
	if !found {
		t.Fatal("a's advertisement never found")
	}
	served := make(chan error, 1)
	go func() {
		c, err := l.Accept(ctx)
		if err != nil {
			served <- err
			return
		}
		_, err = io.Copy(c, c) // until b's close
		_ = c.Close()
		served <- err
	}()
	t0 := time.Now()
	c, err := dialRetrying(t, b, l.Addr())
	if err != nil {
		t.Fatalf("dial over GATT: %v", err)
	}
	opened := time.Since(t0)
	if _, ok := c.(*conn).link.(*gattStream); !ok {
		t.Fatalf("link is %T, not the GATT byte stream", c.(*conn).link)
	}
	msg := make([]byte, 16<<10)
	for i := range msg {
		msg[i] = byte(i * 13)
	}
	t1 := time.Now()
	go func() { _, _ = c.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo over GATT: %v", err)
	}
	echo := time.Since(t1)
	for i := range got {
		if got[i] != msg[i] {
			t.Fatalf("echo differs at byte %d", i)
		}
	}
	_ = c.Close()
	if err := <-served; err != nil {
		t.Fatalf("a's side: %v", err)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("FIGURE GATT byte stream (forced): open %s (connect, services, acquire, open/accept), 16 KB echo %s; guest load average %s", opened.Round(time.Millisecond), echo.Round(time.Millisecond), strings.TrimSpace(string(load)))
}
