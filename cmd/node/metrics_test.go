package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
)

// scrape fetches the metrics endpoint at addr and returns its samples by
// series ("name{labels}" as the text format writes it).
func scrape(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

var metricsAddrRE = regexp.MustCompile(`msg="metrics serving" addr=(\S+)`)

// TestMetricsScrape runs two nodes with metrics.listen on a free loopback
// port, has b join a's group and a send, and scrapes both: the counters
// the core adds to, what the plugins, the network and the messenger report
// when scraped, and the Go runtime.
func TestMetricsScrape(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping two real nodes")
	}
	env := testEnv(t, "SKEIN_METRICS__LISTEN=127.0.0.1:0")
	base := t.TempDir()
	dirs := []string{filepath.Join(base, "a"), filepath.Join(base, "b")}
	var addrs []string
	var clients []*client.Client
	for _, d := range dirs {
		if r := skein(t, env, "init", "--data-dir", d); r.code != 0 {
			t.Fatalf("init: %s", r.stderr)
		}
		n := startKill9Node(t, env, d)
		defer n.stop(t)
		m := metricsAddrRE.FindStringSubmatch(n.lines.wait(t, `msg="metrics serving"`, 10*time.Second))
		if m == nil {
			t.Fatalf("no address in the metrics line:\n%s", n.lines.text())
		}
		addrs = append(addrs, m[1])
		cl, err := client.Dial(d)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients = append(clients, cl)
	}
	a, b := clients[0], clients[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	before := scrape(t, addrs[0])
	for _, name := range []string{
		"skein_messages_sent_total", "skein_messages_delivered_total", "skein_entries_joined_total",
		`skein_entries_rejected_total{reason="bad_signature"}`, `skein_blocks_fetched_total{source="bulk"}`,
		`skein_plugin_restarts_total{id="store.pebble",mode="process",plugin="store"}`,
		`skein_plugin_up{id="network.ipfs",mode="process",plugin="network"}`,
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if _, ok := before[name]; !ok {
			t.Errorf("a fresh node has no %s", name)
		}
	}
	if v := before[`skein_plugin_up{id="network.ipfs",mode="process",plugin="network"}`]; v != 1 {
		t.Errorf("network plugin up = %v, want 1", v)
	}

	acct, err := a.Account.Get(ctx, &apiv1.GetAccountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Peers.Connect(ctx, &apiv1.ConnectPeerRequest{Addr: acct.GetAddrs()[0]}); err != nil {
		t.Fatal(err)
	}
	g, err := a.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "team"})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := a.Groups.Invite(ctx, &apiv1.InviteRequest{Group: g.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Groups.Join(ctx, &apiv1.JoinGroupRequest{Token: inv.GetToken()}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a knows b joined", func() bool {
		ms, err := a.Groups.Members(ctx, &apiv1.MembersRequest{Group: g.GetId()})
		return err == nil && len(ms.GetMembers()) == 2
	})
	for range 3 {
		if _, err := a.Messages.Send(ctx, &apiv1.SendRequest{Group: g.GetId(), Body: []byte("hello")}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "b delivered 3 messages", func() bool {
		return scrape(t, addrs[1])["skein_messages_delivered_total"] == 3
	})

	am, bm := scrape(t, addrs[0]), scrape(t, addrs[1])
	if v := am["skein_messages_sent_total"]; v != 3 {
		t.Errorf("a: skein_messages_sent_total = %v, want 3", v)
	}
	if v := bm["skein_entries_joined_total"]; v < 3 {
		t.Errorf("b: skein_entries_joined_total = %v, want at least the 3 messages", v)
	}
	var fetched float64
	for _, s := range []string{"inline", "bulk", "network"} {
		fetched += bm[`skein_blocks_fetched_total{source="`+s+`"}`]
	}
	if fetched < 3 {
		t.Errorf("b: blocks fetched = %v, want at least 3", fetched)
	}
	for name, m := range map[string]map[string]float64{"a": am, "b": bm} {
		if v := m[`skein_peers_connected{transport="tcp"}`]; v != 1 {
			t.Errorf("%s: skein_peers_connected{transport=tcp} = %v, want 1", name, v)
		}
		if m[`skein_transport_sent_bytes_total{transport="tcp"}`] == 0 || m[`skein_transport_received_bytes_total{transport="tcp"}`] == 0 {
			t.Errorf("%s: no bytes counted on tcp", name)
		}
		var lag, entries bool
		for k := range m {
			lag = lag || strings.HasPrefix(k, "skein_group_sync_lag_seconds{group=")
			entries = entries || strings.HasPrefix(k, "skein_group_log_entries{group=") && strings.Contains(k, `log="messages"`)
		}
		if !lag || !entries {
			t.Errorf("%s: per-group series missing (lag %v, entries %v)", name, lag, entries)
		}
	}
	if v := bm[`skein_peers_connected_by_source{source="manual"}`]; v != 1 {
		t.Errorf("b: peers found manually = %v, want 1 (it connected to a)", v)
	}
}
