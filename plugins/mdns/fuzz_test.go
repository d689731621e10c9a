package mdns

import (
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/skein-p2p/skein/sdk"
)

// FuzzPacket: any datagram from the LAN, as a query or a response, on an
// engine that both advertises and searches: no panic, nothing reported
// that is not a well-formed peer with addresses dialable on the link, and
// the cache within its bound.
func FuzzPacket(f *testing.F) {
	f.Add(testResponse(f, "ns", "000000000000000a", "peer-a", 120, "/ip4/10.0.0.2/tcp/4001", "/ip6/fd00::2/udp/4001/quic-v1"))
	f.Add(testResponse(f, "ns", "000000000000000b", "peer-b", 0))
	f.Add(testQuery(f, "ns"))
	f.Add(testQuery(f, "ns", record{name: testNames.subtype(nsLabel("ns")), typ: dnsmessage.TypePTR, ttl: 100, target: testNames.instance("000000000000000a")}))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c})
	cfg := DefaultConfig()
	cfg.MaxCachedPeers = 4
	f.Fuzz(func(t *testing.T, b []byte) {
		if pk, err := parsePacket(b); err == nil {
			if len(pk.questions) > maxQuestions || len(pk.records) > maxRecords {
				t.Fatalf("kept %d questions, %d records", len(pk.questions), len(pk.records))
			}
			for _, a := range testNames.announcements(pk) {
				if a.ttl > 0 && !wellFormedID(a.id) || len(a.addrs) > maxAddrs {
					t.Fatalf("announcement %+v", a)
				}
			}
		}
		te := newTestEngine(t, cfg, eth0)
		if err := te.advertise(t.Context(), "ns", sdk.PeerInfo{ID: "self", Addrs: []string{"/ip4/10.0.0.1/tcp/1"}}); err != nil {
			t.Fatal(err)
		}
		ch, err := te.findPeers(t.Context(), "ns")
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			te.handle(b, eth0.index, src("10.0.0.2"))
		}
		for _, p := range collect(ch) {
			if !wellFormedID(p.ID) || p.ID == "self" {
				t.Fatalf("reported %+v", p)
			}
			for _, a := range p.Addrs {
				if ip, ok := addrIP(a); !ok || !eth0.dialable(ip) {
					t.Fatalf("reported %+v with an address not dialable on eth0", p)
				}
			}
		}
		te.engine.mu.Lock()
		defer te.engine.mu.Unlock()
		if len(te.cache) > cfg.MaxCachedPeers || len(te.instances) != len(te.cache) {
			t.Fatalf("cache %d, instances %d", len(te.cache), len(te.instances))
		}
	})
}

// FuzzParseConfig: config strings come from files and the environment;
// none may crash the parser, every rejection names its key, and what is
// accepted is within range.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"_skein._udp", "30s", "eth0", "", "1e9", "-1s", "_a._tcp", "\x00"} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, service, interval, iface string) {
		cfg, diags := ParseConfig(map[string]any{"service": service, "query_interval": interval, "interfaces": []any{iface}})
		ok := true
		for _, d := range diags {
			if d.Key == "" || d.Message == "" {
				t.Fatalf("diagnostic without key or message: %+v", d)
			}
			ok = ok && d.Severity != sdk.SeverityError
		}
		if ok && (checkService(cfg.Service) != nil || cfg.QueryInterval < time.Second || cfg.QueryInterval > time.Hour || len(cfg.Interfaces) != 1) {
			t.Fatalf("accepted %+v", cfg)
		}
	})
}
