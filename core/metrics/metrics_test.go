package metrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/skein-p2p/skein/core/log"
)

func TestRejectReason(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"signature", fmt.Errorf("entry x: %w", log.ErrBadSignature), "bad_signature"},
		{"not yet allowed before not allowed", log.ErrNotYetAllowed, "not_yet_allowed"},
		{"not allowed", log.ErrNotAllowed, "not_allowed"},
		{"ancestor", log.ErrBadAncestor, "bad_ancestor"},
		{"unknown", io.EOF, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RejectReason(tt.err); got != tt.want {
				t.Errorf("RejectReason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestRejectedCountsByReason(t *testing.T) {
	c := EntriesRejected.WithLabelValues("bad_clock")
	before := testutil.ToFloat64(c)
	Rejected([]log.Rejection{{Err: log.ErrClock}, {Err: fmt.Errorf("x: %w", log.ErrClock)}})
	if got := testutil.ToFloat64(c) - before; got != 2 {
		t.Errorf("bad_clock rejections counted %v, want 2", got)
	}
}

func TestTransportsFromDetails(t *testing.T) {
	got := TransportsFromDetails(map[string]string{
		"peer":                    "12D3",
		"transport.tcp.peers":     "2",
		"transport.tcp.bytes_in":  "100",
		"transport.tcp.bytes_out": "200",
		"transport.quic-v1.peers": "1",
		"transport.ws.bytes_in":   "not a number",
		"transport..peers":        "9",
	})
	want := []TransportState{{Transport: "quic-v1", Peers: 1}, {Transport: "tcp", Peers: 2, BytesIn: 100, BytesOut: 200}}
	if !slices.Equal(got, want) {
		t.Errorf("TransportsFromDetails = %+v, want %+v", got, want)
	}
}

func TestListenServesNodeState(t *testing.T) {
	state := func(context.Context) NodeState {
		return NodeState{
			Plugins:       []PluginState{{Name: "store", ID: "store.pebble", Mode: "process", Up: true, Restarts: 2}},
			Transports:    []TransportState{{Transport: "tcp", Peers: 1, BytesIn: 10, BytesOut: 20}},
			PeersBySource: map[string]int{"mdns": 1},
			Groups: []GroupState{
				{Group: "g1", Log: "messages", Entries: 5, Missing: 1, LastSync: time.Now().Add(-time.Minute)},
				{Group: "g1", Log: "meta", Entries: 2},
			},
		}
	}
	srv, err := Listen("127.0.0.1:0", true, slog.New(slog.DiscardHandler), NewNodeCollector(state, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	MessagesSent.Inc()
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	for _, want := range []string{
		`skein_plugin_restarts_total{id="store.pebble",mode="process",plugin="store"} 2`,
		`skein_plugin_up{id="store.pebble",mode="process",plugin="store"} 1`,
		`skein_transport_sent_bytes_total{transport="tcp"} 20`,
		`skein_peers_connected{transport="tcp"} 1`,
		`skein_peers_connected_by_source{source="mdns"} 1`,
		`skein_group_log_missing_heads{group="g1",log="messages"} 1`,
		`skein_group_sync_lag_seconds{group="g1"} 6`, // about a minute
		"skein_messages_sent_total ",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape has no %q", want)
		}
	}
	pp, err := http.Get("http://" + srv.Addr() + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	pp.Body.Close()
	if pp.StatusCode != http.StatusOK {
		t.Errorf("GET /debug/pprof/cmdline with pprof on: %s", pp.Status)
	}
	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The node's collector is gone with its server: another can register.
	srv2, err := Listen("127.0.0.1:0", true, slog.New(slog.DiscardHandler), NewNodeCollector(state, time.Second))
	if err != nil {
		t.Fatalf("second endpoint: %v", err)
	}
	if err := srv2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestListenBadAddress(t *testing.T) {
	if _, err := Listen("127.0.0.1:99999", false, slog.New(slog.DiscardHandler), NewNodeCollector(func(context.Context) NodeState { return NodeState{} }, time.Second)); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("Listen on a bad port: %v", err)
	}
}

// FuzzTransportsFromDetails: whatever a network plugin puts in its status
// details, reading them never panics and yields only named transports.
func FuzzTransportsFromDetails(f *testing.F) {
	f.Add("transport.tcp.peers", "3", "transport.quic-v1.bytes_in", "12")
	f.Add("transport..peers", "x", "transport.peers", "-1")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		for _, tr := range TransportsFromDetails(map[string]string{k1: v1, k2: v2}) {
			if tr.Transport == "" {
				t.Fatalf("a transport without a name from %q=%q %q=%q", k1, v1, k2, v2)
			}
		}
	})
}
