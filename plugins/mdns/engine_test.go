package mdns

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/skein-p2p/skein/sdk"
)

// The interfaces of the engine tests: two Ethernet links and loopback.
var (
	eth0 = ifaceInfo{index: 2, name: "eth0", prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("fd00::1/64")}}
	eth1 = ifaceInfo{index: 3, name: "eth1", prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.1.1/24")}}
	lo   = ifaceInfo{index: 1, name: "lo", loopback: true, prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}
)

// sent is a packet the engine sent, and the interface it went out of.
type sent struct {
	b     []byte
	iface string
}

// testEngine is an engine without sockets: packets go to sent, the clock
// is moved by hand, nothing runs in the background.
type testEngine struct {
	*engine
	mu    sync.Mutex
	clock time.Time
	out   []sent
}

func newTestEngine(t testing.TB, cfg Config, ifaces ...ifaceInfo) *testEngine {
	t.Helper()
	te := &testEngine{clock: time.Unix(1_700_000_000, 0)}
	e := newEngine(cfg, slog.New(slog.DiscardHandler))
	e.now = func() time.Time {
		te.mu.Lock()
		defer te.mu.Unlock()
		return te.clock
	}
	e.window = e.now()
	e.out = func(b []byte, ifc ifaceInfo) {
		te.mu.Lock()
		te.out = append(te.out, sent{slices.Clone(b), ifc.name})
		te.mu.Unlock()
	}
	for _, ifc := range ifaces {
		e.ifaces[ifc.index] = ifc
	}
	te.engine = e
	t.Cleanup(e.stop)
	return te
}

func (te *testEngine) advance(d time.Duration) {
	te.mu.Lock()
	te.clock = te.clock.Add(d)
	te.mu.Unlock()
}

// take returns and forgets what was sent.
func (te *testEngine) take() []sent {
	te.mu.Lock()
	defer te.mu.Unlock()
	out := te.out
	te.out = nil
	return out
}

// announced returns the peers the response packets in s name, by interface.
func announced(t testing.TB, s []sent) map[string][]announcement {
	t.Helper()
	out := map[string][]announcement{}
	for _, p := range s {
		pk, err := parsePacket(p.b)
		if err != nil {
			t.Fatalf("sent a packet we cannot parse: %v", err)
		}
		out[p.iface] = append(out[p.iface], testNames.announcements(pk)...)
	}
	return out
}

func src(ip string) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(ip), mdnsPort) }

func testQuery(t testing.TB, namespace string, known ...record) []byte {
	t.Helper()
	b, err := buildQuery([]string{testNames.subtype(nsLabel(namespace))}, known)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAnswersOnlyWhatTheLinkCanReach: each interface's answer holds the
// advertised addresses on that interface's own IPs, and nothing else.
func TestAnswersOnlyWhatTheLinkCanReach(t *testing.T) {
	te := newTestEngine(t, DefaultConfig(), eth0, eth1, lo)
	self := sdk.PeerInfo{ID: "12D3KooWself", Addrs: []string{
		"/ip4/10.0.0.1/tcp/4001",
		"/ip4/10.0.0.1/udp/4001/quic-v1",
		"/ip4/192.168.1.1/tcp/4001",
		"/ip4/127.0.0.1/tcp/4001",
		"/ip6/::1/tcp/4001",
		"/ip6/fe80::1/tcp/4001",
		"/ip6/fd00::1/tcp/4001",
		"/ip4/203.0.113.7/tcp/4001",
		"/ip4/10.0.0.1/tcp/4001/p2p-circuit",
		"/dns4/example.com/tcp/4001",
		"/x-unix-pipe/%2Ftmp%2Fs",
	}}
	if err := te.advertise(t.Context(), "skein/v1", self); err != nil {
		t.Fatal(err)
	}
	te.tick() // the first announcement
	got := announced(t, te.take())
	want := map[string][]string{
		"eth0": {"/ip4/10.0.0.1/tcp/4001", "/ip4/10.0.0.1/udp/4001/quic-v1", "/ip6/fd00::1/tcp/4001", "/ip4/10.0.0.1/tcp/4001/p2p-circuit"},
		"eth1": {"/ip4/192.168.1.1/tcp/4001"},
		"lo":   {"/ip4/127.0.0.1/tcp/4001"},
	}
	for iface, addrs := range want {
		if len(got[iface]) != 1 || got[iface][0].id != self.ID || !slices.Equal(got[iface][0].addrs, addrs) {
			t.Errorf("%s: announced %+v, want %s with %q", iface, got[iface], self.ID, addrs)
		}
	}

	// A query on eth1 is answered on eth1 only, with eth1's address.
	te.advance(2 * time.Second)
	te.handle(testQuery(t, "skein/v1"), eth1.index, src("192.168.1.9"))
	out := te.take()
	if len(out) != 1 || out[0].iface != "eth1" {
		t.Fatalf("answered %v, want one packet on eth1", out)
	}
	if a := announced(t, out)["eth1"]; len(a) != 1 || !slices.Equal(a[0].addrs, want["eth1"]) {
		t.Fatalf("answer on eth1: %+v", a)
	}
	// Nothing but the peer id and addresses: the TXT holds id= and a=.
	pk, _ := parsePacket(out[0].b)
	for _, r := range pk.records {
		for _, s := range r.txt {
			if !strings.HasPrefix(s, "id=") && !strings.HasPrefix(s, "a=") {
				t.Errorf("TXT string %q", s)
			}
		}
		if r.typ != dnsmessage.TypePTR && r.typ != dnsmessage.TypeTXT {
			t.Errorf("record of type %v", r.typ)
		}
	}
	if len(pk.records) != 2 {
		t.Errorf("%d records, want PTR and TXT", len(pk.records))
	}
}

// TestAnswering: who gets an answer and when.
func TestAnswering(t *testing.T) {
	te := newTestEngine(t, DefaultConfig(), eth0)
	self := sdk.PeerInfo{ID: "self", Addrs: []string{"/ip4/10.0.0.1/tcp/4001"}}
	if err := te.advertise(t.Context(), "ns", self); err != nil {
		t.Fatal(err)
	}
	te.tick()
	te.take()
	var instance string
	for inst := range te.adverts {
		instance = inst
	}
	sub := testNames.subtype(nsLabel("ns"))
	cases := []struct {
		name    string
		advance time.Duration
		packet  []byte
		from    netip.AddrPort
		iface   int
		answers bool
	}{
		{"within a second of the announcement", 0, testQuery(t, "ns"), src("10.0.0.9"), eth0.index, false},
		{"a query", 2 * time.Second, testQuery(t, "ns"), src("10.0.0.9"), eth0.index, true},
		{"again at once", 0, testQuery(t, "ns"), src("10.0.0.9"), eth0.index, false},
		{"another namespace", 2 * time.Second, testQuery(t, "other"), src("10.0.0.9"), eth0.index, false},
		{"known answer with TTL left", 0, testQuery(t, "ns", record{name: sub, typ: dnsmessage.TypePTR, ttl: 100, target: instance}), src("10.0.0.9"), eth0.index, false},
		{"known answer about to expire", 0, testQuery(t, "ns", record{name: sub, typ: dnsmessage.TypePTR, ttl: 10, target: instance}), src("10.0.0.9"), eth0.index, true},
		{"from a port other than 5353", 2 * time.Second, testQuery(t, "ns"), netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), 40000), eth0.index, false},
		{"from off the link", 0, testQuery(t, "ns"), src("10.9.9.9"), eth0.index, false},
		{"on an interface not ours", 0, testQuery(t, "ns"), src("10.0.0.9"), 42, false},
		{"garbage", 0, []byte("\x00\x00\x00\x00\x00\x01garbage"), src("10.0.0.9"), eth0.index, false},
		{"still answers", 0, testQuery(t, "ns"), src("10.0.0.9"), eth0.index, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			te.advance(tc.advance)
			te.handle(tc.packet, tc.iface, tc.from)
			if out := te.take(); (len(out) > 0) != tc.answers {
				t.Fatalf("sent %d packets, want an answer: %v", len(out), tc.answers)
			}
		})
	}
}

// collect reads what is reported on ch without waiting.
func collect(ch <-chan sdk.PeerInfo) []sdk.PeerInfo {
	var out []sdk.PeerInfo
	for {
		select {
		case p := <-ch:
			out = append(out, p)
		default:
			return out
		}
	}
}

// TestResponses: what a response may and may not make the engine report.
func TestResponses(t *testing.T) {
	te := newTestEngine(t, DefaultConfig(), eth0, eth1)
	if err := te.advertise(t.Context(), "ns", sdk.PeerInfo{ID: "self", Addrs: []string{"/ip4/10.0.0.1/tcp/4001"}}); err != nil {
		t.Fatal(err)
	}
	ch, err := te.findPeers(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	te.tick()
	var own []byte
	for _, s := range te.take() {
		if pk, _ := parsePacket(s.b); pk.response && s.iface == "eth0" {
			own = s.b
		}
	}
	cases := []struct {
		name   string
		packet []byte
		from   netip.AddrPort
		iface  int
		want   []sdk.PeerInfo
	}{
		{"a peer", testResponse(t, "ns", "000000000000000a", "peer-a", 120, "/ip4/10.0.0.2/tcp/4001"), src("10.0.0.2"), eth0.index,
			[]sdk.PeerInfo{{ID: "peer-a", Addrs: []string{"/ip4/10.0.0.2/tcp/4001"}}}},
		{"the same again: not reported twice", testResponse(t, "ns", "000000000000000a", "peer-a", 120, "/ip4/10.0.0.2/tcp/4001"), src("10.0.0.2"), eth0.index, nil},
		{"new addresses: reported", testResponse(t, "ns", "000000000000000a", "peer-a", 120, "/ip4/10.0.0.3/tcp/4001"), src("10.0.0.3"), eth0.index,
			[]sdk.PeerInfo{{ID: "peer-a", Addrs: []string{"/ip4/10.0.0.3/tcp/4001"}}}},
		{"our own looped back", own, src("10.0.0.1"), eth0.index, nil},
		{"someone else naming our peer id", testResponse(t, "ns", "000000000000000b", "self", 120, "/ip4/10.0.0.66/tcp/4001"), src("10.0.0.66"), eth0.index, nil},
		{"addresses off the link, loopback and public dropped", testResponse(t, "ns", "000000000000000c", "peer-c", 120,
			"/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.5/tcp/4001", "/ip4/8.8.8.8/tcp/53", "/ip4/10.0.0.5/tcp/4001", "/ip6/fe80::5/tcp/4001"), src("10.0.0.5"), eth0.index,
			[]sdk.PeerInfo{{ID: "peer-c", Addrs: []string{"/ip4/10.0.0.5/tcp/4001"}}}},
		{"another host's address on the link: not reported", testResponse(t, "ns", "0000000000000012", "peer-i", 120, "/ip4/10.0.0.21/tcp/4001"), src("10.0.0.20"), eth0.index, nil},
		{"only addresses we may not dial: not reported", testResponse(t, "ns", "000000000000000d", "peer-d", 120, "/ip4/127.0.0.1/tcp/4001", "/ip4/1.1.1.1/tcp/4001"), src("10.0.0.6"), eth0.index, nil},
		{"another namespace", testResponse(t, "other", "000000000000000e", "peer-e", 120, "/ip4/10.0.0.7/tcp/4001"), src("10.0.0.7"), eth0.index, nil},
		{"the other link's peer, with its addresses", testResponse(t, "ns", "000000000000000f", "peer-f", 120, "/ip4/192.168.1.8/tcp/4001", "/ip4/10.0.0.8/tcp/4001"), src("192.168.1.8"), eth1.index,
			[]sdk.PeerInfo{{ID: "peer-f", Addrs: []string{"/ip4/192.168.1.8/tcp/4001"}}}},
		{"from a port other than 5353", testResponse(t, "ns", "0000000000000010", "peer-g", 120, "/ip4/10.0.0.9/tcp/4001"), netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), 1234), eth0.index, nil},
		{"a sender off the link", testResponse(t, "ns", "0000000000000011", "peer-h", 120, "/ip4/10.0.0.10/tcp/4001"), src("172.16.0.1"), eth0.index, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			te.handle(tc.packet, tc.iface, tc.from)
			got := collect(ch)
			if len(got) != len(tc.want) {
				t.Fatalf("reported %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].ID != tc.want[i].ID || !slices.Equal(got[i].Addrs, tc.want[i].Addrs) {
					t.Fatalf("reported %+v, want %+v", got, tc.want)
				}
			}
		})
	}
	if te.stats.spoofedSelf != 1 || te.stats.selfEcho == 0 || te.stats.offLink != 2 {
		t.Errorf("stats %+v: want one spoof of our id, our own echo, two senders off the link or port", te.stats)
	}

	t.Run("reported again after an interval while announced", func(t *testing.T) {
		te.advance(DefaultQueryInterval)
		te.tick()
		got := collect(ch)
		if !slices.ContainsFunc(got, func(p sdk.PeerInfo) bool { return p.ID == "peer-a" }) {
			t.Fatalf("reported %+v, want peer-a again", got)
		}
	})
	t.Run("goodbye forgets", func(t *testing.T) {
		te.handle(testResponse(t, "ns", "000000000000000a", "peer-a", 0, "/ip4/10.0.0.3/tcp/4001"), eth0.index, src("10.0.0.2"))
		if _, ok := te.cache[cacheKey{nsLabel("ns"), "peer-a"}]; ok {
			t.Fatal("peer-a still cached after its goodbye")
		}
	})
	t.Run("expiry forgets", func(t *testing.T) {
		te.advance(recordTTL*time.Second + time.Second)
		te.tick()
		if len(te.cache) != 0 {
			t.Fatalf("cache after every TTL passed: %v", te.cache)
		}
	})
}

// TestFloodIsBounded: a LAN announcing thousands of peers from one
// sender, then from a few, then from many, gets at most the budgets
// reported and cached; a real peer arriving meanwhile is reported first
// when the budget allows again.
func TestFloodIsBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPeersPerInterval, cfg.MaxPeersPerSource, cfg.MaxCachedPeers = 32, 8, 100
	te := newTestEngine(t, cfg, eth0)
	ch, err := te.findPeers(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	flood := func(count, senders, first int) int {
		reported := 0
		for i := range count {
			n++
			ip := fmt.Sprintf("10.0.0.%d", first+i%senders)
			te.handle(testResponse(t, "ns", fmt.Sprintf("%016x", n), fmt.Sprintf("fake-%d", n), 120, "/ip4/"+ip+"/tcp/4001"), eth0.index, src(ip))
			reported += len(collect(ch))
		}
		return reported
	}
	if got := flood(2000, 1, 10); got != cfg.MaxPeersPerSource {
		t.Fatalf("one sender, 2000 peers: %d reported, want %d (max_peers_per_source)", got, cfg.MaxPeersPerSource)
	}
	if got := flood(2000, 10, 10); got != cfg.MaxPeersPerInterval-cfg.MaxPeersPerSource {
		t.Fatalf("ten senders: %d reported, want the rest of the budget %d", got, cfg.MaxPeersPerInterval-cfg.MaxPeersPerSource)
	}
	if len(te.cache) != 10*cfg.MaxPeersPerSource {
		t.Fatalf("%d cached, want %d", len(te.cache), 10*cfg.MaxPeersPerSource)
	}
	// A real peer arriving with the budget spent waits for the next
	// interval, and is then reported before the flood's peers: its sender
	// announced one peer, the flooding ones eight each.
	te.handle(testResponse(t, "ns", "00000000000000ff", "real", 120, "/ip4/10.0.0.250/tcp/4001"), eth0.index, src("10.0.0.250"))
	if got := collect(ch); len(got) != 0 {
		t.Fatalf("reported %v with the budget spent", got)
	}
	te.advance(cfg.QueryInterval)
	te.tick()
	got := collect(ch)
	if len(got) != cfg.MaxPeersPerInterval || got[0].ID != "real" {
		t.Fatalf("next interval: %d reported, first %+v; want %d, the real peer first", len(got), got[0], cfg.MaxPeersPerInterval)
	}
	// Many senders fill the cache to its bound, no further.
	flood(2000, 200, 20)
	if len(te.cache) != cfg.MaxCachedPeers {
		t.Fatalf("%d cached, want max_cached_peers %d", len(te.cache), cfg.MaxCachedPeers)
	}
	if te.stats.cacheFull == 0 || te.stats.overSource == 0 || te.stats.overBudget == 0 {
		t.Fatalf("stats %+v: want refusals counted", te.stats)
	}
}

// TestQueries: a search asks at once, backs off to the query interval,
// and lists the peers it knows and its own advertisements.
func TestQueries(t *testing.T) {
	te := newTestEngine(t, DefaultConfig(), eth0)
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := te.findPeers(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if err := te.advertise(t.Context(), "ns", sdk.PeerInfo{ID: "self"}); err != nil {
		t.Fatal(err)
	}
	te.handle(testResponse(t, "ns", "000000000000000a", "peer-a", 120, "/ip4/10.0.0.2/tcp/4001"), eth0.index, src("10.0.0.2"))
	queries := func() []packet {
		var out []packet
		for _, s := range te.take() {
			if pk, err := parsePacket(s.b); err == nil && !pk.response {
				out = append(out, pk)
			}
		}
		return out
	}
	var at []time.Duration
	start := te.now()
	for range 400 { // 100 s in ticks
		te.tick()
		for _, q := range queries() {
			at = append(at, te.now().Sub(start))
			// peer-a is known while more than half its TTL is left.
			if want := 2 - min(1, int(te.now().Sub(start)/(recordTTL*time.Second/2))); len(q.records) != want {
				t.Fatalf("query at %s with known answers %+v, want %d (peer-a while fresh, and our own)", at[len(at)-1], q.records, want)
			}
		}
		te.advance(tickEvery)
	}
	if len(at) < 5 || at[0] != 0 || at[1] > time.Second || at[len(at)-1]-at[len(at)-2] < DefaultQueryInterval*9/10-tickEvery {
		t.Fatalf("queries at %v: want at once, then backing off to %s", at, DefaultQueryInterval)
	}
	cancel()
	waitClosed(t, ch)
	te.engine.mu.Lock()
	n := len(te.cache)
	te.engine.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d peers cached after the search ended", n)
	}
}

func waitClosed(t *testing.T, ch <-chan sdk.PeerInfo) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("channel not closed")
		}
	}
}

// TestStopSaysGoodbye: Stop sends every advertisement with TTL 0 and
// closes the searches.
func TestStopSaysGoodbye(t *testing.T) {
	te := newTestEngine(t, DefaultConfig(), eth0)
	if err := te.advertise(context.Background(), "ns", sdk.PeerInfo{ID: "self", Addrs: []string{"/ip4/10.0.0.1/tcp/1"}}); err != nil {
		t.Fatal(err)
	}
	ch, err := te.findPeers(context.Background(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	te.tick()
	te.take()
	te.stop()
	anns := announced(t, te.take())["eth0"]
	if len(anns) != 1 || anns[0].ttl != 0 {
		t.Fatalf("at stop sent %+v, want one goodbye", anns)
	}
	waitClosed(t, ch)
	if err := te.advertise(context.Background(), "ns", sdk.PeerInfo{ID: "self"}); err == nil {
		t.Fatal("advertise after stop succeeded")
	}
}

// TestBothFamilies: a dual-stack peer's IPv4 and IPv6 packets each vouch
// for their own family's addresses; the peer is reported with both, and
// not again each time a packet of the other family comes.
func TestBothFamilies(t *testing.T) {
	te := newTestEngine(t, DefaultConfig(), eth0)
	ch, err := te.findPeers(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{"/ip4/10.0.0.2/tcp/4001", "/ip6/fd00::2/tcp/4001"}
	b := testResponse(t, "ns", "000000000000000a", "peer", 120, addrs...)
	te.handle(b, eth0.index, src("10.0.0.2"))
	te.handle(b, eth0.index, src("fe80::2"))
	got := collect(ch)
	if len(got) != 2 || !slices.Equal(got[1].Addrs, addrs) {
		t.Fatalf("reported %+v, want the IPv4 address, then both", got)
	}
	for range 3 {
		te.handle(b, eth0.index, src("10.0.0.2"))
		te.handle(b, eth0.index, src("fe80::2"))
	}
	if got := collect(ch); len(got) != 0 {
		t.Fatalf("reported again %+v", got)
	}
}
