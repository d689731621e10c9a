package mdns

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

var testNames = newNames(DefaultService)

// testResponse builds a response naming one peer under namespace.
func testResponse(t testing.TB, namespace, instanceLabel, id string, ttl uint32, addrs ...string) []byte {
	t.Helper()
	inst := testNames.instance(instanceLabel)
	b, err := buildResponse([]record{
		{name: testNames.subtype(nsLabel(namespace)), typ: dnsmessage.TypePTR, ttl: ttl, target: inst},
		{name: inst, typ: dnsmessage.TypeTXT, ttl: ttl, txt: txtOf(id, addrs, maxPacket)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWireRoundTrip(t *testing.T) {
	addrs := []string{"/ip4/10.0.0.1/tcp/4001", "/ip6/fd00::1/udp/4001/quic-v1"}
	b := testResponse(t, "skein/v1", "0123456789abcdef", "12D3KooWpeer", recordTTL, addrs...)
	if len(b) > maxPacket {
		t.Fatalf("response of %d bytes", len(b))
	}
	pk, err := parsePacket(b)
	if err != nil {
		t.Fatal(err)
	}
	anns := testNames.announcements(pk)
	if len(anns) != 1 {
		t.Fatalf("announcements = %+v", anns)
	}
	a := anns[0]
	if a.label != nsLabel("skein/v1") || a.id != "12D3KooWpeer" || !slices.Equal(a.addrs, addrs) || a.ttl != recordTTL || a.instance != testNames.instance("0123456789abcdef") {
		t.Fatalf("announcement = %+v", a)
	}
	// What a LAN observer reads: the namespace only as a hash.
	if strings.Contains(string(b), "skein/v1") {
		t.Fatal("the namespace is sent in the clear")
	}

	q, err := buildQuery([]string{testNames.subtype(nsLabel("skein/v1"))}, []record{{name: testNames.subtype(nsLabel("skein/v1")), typ: dnsmessage.TypePTR, ttl: 100, target: a.instance}})
	if err != nil {
		t.Fatal(err)
	}
	qp, err := parsePacket(q)
	if err != nil {
		t.Fatal(err)
	}
	if qp.response || len(qp.questions) != 1 || qp.questions[0].typ != dnsmessage.TypePTR || !knowsAnswer(qp, testNames.subtype(nsLabel("skein/v1")), a.instance) {
		t.Fatalf("query = %+v", qp)
	}
}

func TestQueryKnownAnswersFitOnePacket(t *testing.T) {
	sub := testNames.subtype(nsLabel("ns"))
	var known []record
	for i := range 200 {
		known = append(known, record{name: sub, typ: dnsmessage.TypePTR, ttl: 100, target: testNames.instance(strings.Repeat(string("0123456789abcdef"[i%16]), 16))})
	}
	b, err := buildQuery([]string{sub}, known)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxPacket {
		t.Fatalf("query of %d bytes with 200 known answers, want at most %d", len(b), maxPacket)
	}
}

func TestAnnouncementsRefuse(t *testing.T) {
	inst := testNames.instance("0123456789abcdef")
	sub := testNames.subtype(nsLabel("ns"))
	ptr := record{name: sub, typ: dnsmessage.TypePTR, ttl: 120, target: inst}
	txt := func(s ...string) record { return record{name: inst, typ: dnsmessage.TypeTXT, ttl: 120, txt: s} }
	cases := []struct {
		name    string
		records []record
		want    int // announcements
		addrs   int // addresses in the first
	}{
		{"well formed", []record{ptr, txt("id=p", "a=/ip4/10.0.0.1/tcp/1")}, 1, 1},
		{"no id", []record{ptr, txt("a=/ip4/10.0.0.1/tcp/1")}, 0, 0},
		{"two ids", []record{ptr, txt("id=p", "id=q")}, 0, 0},
		{"id with a space", []record{ptr, txt("id=p q")}, 0, 0},
		{"id too long", []record{ptr, txt("id=" + strings.Repeat("p", maxPeerID+1))}, 0, 0},
		{"not an IP multiaddr", []record{ptr, txt("id=p", "a=/dns4/example.com/tcp/1", "a=/ip6zone/eth0/ip6/fe80::1/tcp/1", "a=garbage", "a=/ip4/999.0.0.1/tcp/1")}, 1, 0},
		{"too many addresses", []record{ptr, txt(append([]string{"id=p"}, slices.Repeat([]string{"a=/ip4/10.0.0.1/tcp/1"}, maxAddrs+5)...)...)}, 1, maxAddrs},
		{"unknown keys ignored", []record{ptr, txt("id=p", "v=9", "x")}, 1, 0},
		{"PTR without TXT", []record{ptr}, 0, 0},
		{"goodbye without TXT", []record{{name: sub, typ: dnsmessage.TypePTR, ttl: 0, target: inst}}, 1, 0},
		{"another service", []record{{name: newNames("_other._udp").subtype(nsLabel("ns")), typ: dnsmessage.TypePTR, ttl: 120, target: inst}, txt("id=p")}, 0, 0},
		{"instance of another service", []record{{name: sub, typ: dnsmessage.TypePTR, ttl: 120, target: newNames("_other._udp").instance("0123456789abcdef")}, txt("id=p")}, 0, 0},
		{"namespace label not hex", []record{{name: "_0123456789abcdeg._sub." + testNames.service, typ: dnsmessage.TypePTR, ttl: 120, target: inst}, txt("id=p")}, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := buildResponse(tc.records)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := parsePacket(b)
			if err != nil {
				t.Fatal(err)
			}
			anns := testNames.announcements(pk)
			if len(anns) != tc.want {
				t.Fatalf("announcements = %+v, want %d", anns, tc.want)
			}
			if tc.want > 0 && len(anns[0].addrs) != tc.addrs {
				t.Fatalf("addresses = %q, want %d", anns[0].addrs, tc.addrs)
			}
		})
	}
}

func TestParsePacketRefuses(t *testing.T) {
	good := testResponse(t, "ns", "0123456789abcdef", "p", 120, "/ip4/10.0.0.1/tcp/1")
	withOpcode := append([]byte(nil), good...)
	withOpcode[2] |= 0x10 // opcode 2
	withRcode := append([]byte(nil), good...)
	withRcode[3] |= 0x03
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"header only, truncated", good[:11]},
		{"truncated record", good[:len(good)-3]},
		{"opcode not 0", withOpcode},
		{"rcode not 0", withRcode},
		{"counts beyond the packet", []byte{0, 0, 0x84, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parsePacket(tc.b); err == nil {
				t.Fatal("parsed")
			}
		})
	}
}

func TestNamesCompareWithoutCase(t *testing.T) {
	inst := strings.ToUpper(testNames.instance("0123456789abcdef"))
	b, err := buildResponse([]record{
		{name: strings.ToUpper(testNames.subtype(nsLabel("ns"))), typ: dnsmessage.TypePTR, ttl: 120, target: inst},
		{name: inst, typ: dnsmessage.TypeTXT, ttl: 120, txt: []string{"id=p"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pk, err := parsePacket(b)
	if err != nil {
		t.Fatal(err)
	}
	if anns := testNames.announcements(pk); len(anns) != 1 {
		t.Fatalf("announcements = %+v", anns)
	}
}

func TestCheckService(t *testing.T) {
	cases := []struct {
		in string
		ok bool
	}{
		{"_skein._udp", true},
		{"_SKEIN._tcp", true},
		{"_a-b._udp", true},
		{"skein._udp", false},
		{"_skein", false},
		{"_skein._sctp", false},
		{"_._udp", false},
		{"_-a._udp", false},
		{"_abcdefghijklmnop._udp", false},
		{"_a.b._udp", false},
		{"_a b._udp", false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if err := checkService(tc.in); (err == nil) != tc.ok {
				t.Fatalf("checkService(%q) = %v, want ok %v", tc.in, err, tc.ok)
			}
		})
	}
}
