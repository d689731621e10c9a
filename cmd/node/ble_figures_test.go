package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/skein-p2p/skein/plugins/ble"
)

// TestBLESimFigures measures what docs/performance.md reports of the BLE
// plugin over the simulated radio at its defaults (MTU 185, 250 kbit/s,
// 10 ms latency, advertisements every 100 ms; the plugin's own defaults):
// time from two nodes' start to their connection over BLE (discovery,
// identity read, tie-break, dial, Noise, yamux), group-message latency
// (send on one, delivered on the other), and the catch-up of 1,000
// messages after one was out of range. It prints the figures and asserts
// none: SKEIN_BLE_FIGURES=1 go test -run TestBLESimFigures -v ./cmd/node
func TestBLESimFigures(t *testing.T) {
	if os.Getenv("SKEIN_BLE_FIGURES") == "" {
		t.Skip("set SKEIN_BLE_FIGURES=1 to measure")
	}
	runs, _ := strconv.Atoi(os.Getenv("SKEIN_BLE_FIGURES_RUNS"))
	if runs <= 0 {
		runs = 3
	}
	var connects []time.Duration
	for i := range runs {
		t0 := time.Now()
		medium, nodes := startBLENodesDefaults(t, fmt.Sprint(i))
		waitConnected(t, nodes[0], nodes[1])
		connects = append(connects, time.Since(t0))
		if i < runs-1 {
			for _, d := range nodes {
				_ = stopBLENode(d)
			}
			continue
		}
		a, b := nodes[0], nodes[1]
		ref := joinAll(t, a, b)
		sub, _, err := b.svc.m.Subscribe(t.Context(), ref)
		if err != nil {
			t.Fatal(err)
		}
		var lat []time.Duration
		for k := range 50 {
			text := fmt.Sprintf("latency %d", k)
			send(t, a, ref, text)
			d, err := awaitMessage(t.Context(), sub, text, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			lat = append(lat, d)
		}
		slices.Sort(lat)
		if err := ble.SimAir(medium).Move(b.name, 1000, 0); err != nil {
			t.Fatal(err)
		}
		if err := waitCondition(t.Context(), 60*time.Second, func() (bool, error) { return !connectedTo(a, b), nil }); err != nil {
			t.Fatal(err)
		}
		const away = 1000
		for k := range away {
			send(t, a, ref, fmt.Sprintf("away %04d", k))
		}
		t1 := time.Now()
		carried0 := ble.SimAir(medium).Carried()
		if err := ble.SimAir(medium).Move(b.name, 10, 0); err != nil {
			t.Fatal(err)
		}
		if err := waitCount(t.Context(), b, ref, 50+away, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		catchUp := time.Since(t1)
		carried := ble.SimAir(medium).Carried() - carried0
		slices.Sort(connects)
		load, _ := os.ReadFile("/proc/loadavg")
		t.Logf("FIGURE sim defaults: discover+connect median %s (min %s, max %s, %d runs); message latency p50 %s p99 %s max %s (50 messages); catch-up of %d messages %s (from back in range), %d bytes on the radio (%d per message), %.0f%% of one direction's %d B/s; load average %s",
			connects[len(connects)/2].Round(time.Millisecond), connects[0].Round(time.Millisecond), connects[len(connects)-1].Round(time.Millisecond), runs,
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond),
			away, catchUp.Round(time.Millisecond), carried, carried/away, 100*float64(carried)/(catchUp.Seconds()*ble.DefaultSimBandwidth), ble.DefaultSimBandwidth, string(load[:len(load)-1]))
	}
}

// startBLENodesDefaults starts two nodes on the sim radio at its and the
// plugin's defaults, 10 apart.
func startBLENodesDefaults(t *testing.T, tag string) (string, []*demoNode) {
	t.Helper()
	return startBLENodesWith(t, func(s bleSpot) string {
		return fmt.Sprintf("      sim_device: %s\n      sim_position: [%v, 0]\n      sim_range: %v\n", s.name, s.x, s.range_)
	}, bleSpot{name: "fa" + tag, x: 0, range_: 50}, bleSpot{name: "fb" + tag, x: 10, range_: 50})
}
