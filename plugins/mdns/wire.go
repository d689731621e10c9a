package mdns

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// The wire format: DNS-SD over multicast DNS (RFC 6762, RFC 6763), PTR and
// TXT records only (no SRV, A or host name: nothing about the machine).
//
//	query:    PTR? _<ns>._sub.<service>.local.   known answers in the answer section
//	response: _<ns>._sub.<service>.local.  PTR  <instance>.<service>.local.
//	          <instance>.<service>.local.   TXT  "id=<peer id>" "a=<multiaddr>" ...
//
// <ns> is the first 8 bytes of sha256(namespace) in hex, so a namespace
// is never sent in the clear; <instance> is 8 random bytes in hex, new for
// every advertisement, so that nothing in a name is stable across runs.

// Sizes and counts. Anything beyond is ignored, never allocated for.
const (
	// mdnsPort is the multicast DNS port.
	mdnsPort = 5353
	// maxPacket bounds what is sent: it fits an Ethernet frame with IPv6
	// and UDP headers, so nothing is fragmented.
	maxPacket = 1400
	// readBuffer is the largest datagram read (RFC 6762 section 17 allows
	// up to 9000 bytes); a longer one is cut there and then fails to parse.
	readBuffer = 9000
	// maxQuestions and maxRecords bound what one received packet may make
	// us look at.
	maxQuestions = 16
	maxRecords   = 64
	// maxTXTStrings bounds the strings of one TXT record looked at.
	maxTXTStrings = 24
	// maxAddrs bounds the addresses taken from one announcement.
	maxAddrs = 16
	// maxPeerID bounds a peer id (a libp2p Ed25519 id is 52 characters).
	maxPeerID = 128
	// recordTTL is the TTL of what is announced, in seconds: RFC 6762's
	// 120 s for records that name addresses.
	recordTTL = 120
	// nsLabelLen is the length of a namespace label, "_" and 16 hex digits.
	nsLabelLen = 17
	// instanceLabelLen is the length of an instance label: 16 hex digits.
	instanceLabelLen = 16
)

// Errors of the packet decoder.
var (
	// errNotMDNS: the packet is not a well-formed multicast DNS message we
	// look at (bad opcode or rcode, truncated, malformed).
	errNotMDNS = errors.New("not a multicast DNS message")
)

// names are the DNS names of one service type.
type names struct {
	service string // "_skein._udp.local."
}

func newNames(service string) names {
	return names{service: strings.ToLower(service) + ".local."}
}

// nsLabel is the namespace's label: "_" + hex(sha256(namespace)[:8]).
func nsLabel(namespace string) string {
	h := sha256.Sum256([]byte(namespace))
	return "_" + hex.EncodeToString(h[:8])
}

// subtype is the name queried for a namespace label.
func (n names) subtype(label string) string { return label + "._sub." + n.service }

// instance is the full name of an instance label.
func (n names) instance(label string) string { return label + "." + n.service }

// labelOfSubtype returns the namespace label of a subtype name of this
// service, or "" if name is not one.
func (n names) labelOfSubtype(name string) string {
	rest, ok := strings.CutSuffix(name, "._sub."+n.service)
	if !ok || len(rest) != nsLabelLen || rest[0] != '_' || !isHex(rest[1:]) {
		return ""
	}
	return rest
}

// isInstance reports whether name is an instance name of this service.
func (n names) isInstance(name string) bool {
	rest, ok := strings.CutSuffix(name, "."+n.service)
	return ok && len(rest) == instanceLabelLen && isHex(rest)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// question is one question of a received packet.
type question struct {
	name string // lower case, with the trailing dot
	typ  dnsmessage.Type
}

// record is one PTR or TXT record of a received or sent packet.
type record struct {
	name   string // lower case, with the trailing dot
	typ    dnsmessage.Type
	ttl    uint32
	target string   // PTR
	txt    []string // TXT
}

// packet is what we look at in a received message.
type packet struct {
	response  bool
	questions []question
	// records are the PTR and TXT records of the answer and additional
	// sections; in a query, the answer section's are known answers.
	records []record
}

// parsePacket decodes a multicast DNS message, keeping at most
// maxQuestions questions and maxRecords PTR and TXT records (other
// records are skipped). It never allocates more than the packet's size
// permits.
func parsePacket(b []byte) (packet, error) {
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil {
		return packet{}, fmt.Errorf("%w: %v", errNotMDNS, err)
	}
	// RFC 6762 section 18.3 and 18.11: other opcodes and rcodes are ignored.
	if h.OpCode != 0 || h.RCode != dnsmessage.RCodeSuccess {
		return packet{}, fmt.Errorf("%w: opcode %d, rcode %d", errNotMDNS, h.OpCode, h.RCode)
	}
	pk := packet{response: h.Response}
	for {
		q, err := p.Question()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return packet{}, fmt.Errorf("%w: question: %v", errNotMDNS, err)
		}
		if len(pk.questions) < maxQuestions && q.Class&^0x8000 == dnsmessage.ClassINET {
			pk.questions = append(pk.questions, question{name: lowerASCII(q.Name.String()), typ: q.Type})
		}
	}
	if err := readRecords(&p, &pk, p.AnswerHeader, p.SkipAnswer); err != nil {
		return packet{}, err
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return packet{}, fmt.Errorf("%w: authority: %v", errNotMDNS, err)
	}
	if err := readRecords(&p, &pk, p.AdditionalHeader, p.SkipAdditional); err != nil {
		return packet{}, err
	}
	return pk, nil
}

// readRecords appends the PTR and TXT records of one section.
func readRecords(p *dnsmessage.Parser, pk *packet, header func() (dnsmessage.ResourceHeader, error), skip func() error) error {
	for {
		h, err := header()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: record: %v", errNotMDNS, err)
		}
		keep := len(pk.records) < maxRecords && h.Class&^0x8000 == dnsmessage.ClassINET
		switch {
		case keep && h.Type == dnsmessage.TypePTR:
			r, err := p.PTRResource()
			if err != nil {
				return fmt.Errorf("%w: PTR: %v", errNotMDNS, err)
			}
			pk.records = append(pk.records, record{name: lowerASCII(h.Name.String()), typ: h.Type, ttl: h.TTL, target: lowerASCII(r.PTR.String())})
		case keep && h.Type == dnsmessage.TypeTXT:
			r, err := p.TXTResource()
			if err != nil {
				return fmt.Errorf("%w: TXT: %v", errNotMDNS, err)
			}
			txt := r.TXT
			if len(txt) > maxTXTStrings {
				txt = txt[:maxTXTStrings]
			}
			pk.records = append(pk.records, record{name: lowerASCII(h.Name.String()), typ: h.Type, ttl: h.TTL, txt: txt})
		default:
			if err := skip(); err != nil {
				return fmt.Errorf("%w: record: %v", errNotMDNS, err)
			}
		}
	}
}

// lowerASCII lowers ASCII letters only: DNS names compare without case
// (RFC 4343), and nothing else about a name is interpreted.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// announcement is one peer named by a received response.
type announcement struct {
	label    string // namespace label
	instance string // instance name
	ttl      uint32 // 0: the peer said goodbye
	id       string // "" for a goodbye without TXT
	addrs    []string
	// badAddrs counts addresses that were not well formed.
	badAddrs int
}

// announcements extracts the peers a response names under this service:
// for each PTR from a namespace subtype to an instance, the instance's
// TXT record (the first one). A PTR without a TXT is kept only as a
// goodbye (TTL 0); a TXT without a well-formed id is dropped.
func (n names) announcements(pk packet) []announcement {
	if !pk.response {
		return nil
	}
	var out []announcement
	for _, r := range pk.records {
		if r.typ != dnsmessage.TypePTR {
			continue
		}
		label := n.labelOfSubtype(r.name)
		if label == "" || !n.isInstance(r.target) {
			continue
		}
		a := announcement{label: label, instance: r.target, ttl: r.ttl}
		var txt *record
		for i := range pk.records {
			if pk.records[i].typ == dnsmessage.TypeTXT && pk.records[i].name == r.target {
				txt = &pk.records[i]
				break
			}
		}
		if txt == nil {
			if r.ttl == 0 {
				out = append(out, a)
			}
			continue
		}
		if txt.ttl == 0 {
			a.ttl = 0
		}
		var ok bool
		a.id, a.addrs, a.badAddrs, ok = parseTXT(txt.txt)
		if !ok {
			continue
		}
		out = append(out, a)
	}
	return out
}

// parseTXT reads "id=<peer id>" and "a=<multiaddr>" strings; other keys
// are ignored (room for later versions). ok is false without exactly one
// well-formed id.
func parseTXT(txt []string) (id string, addrs []string, bad int, ok bool) {
	ids := 0
	for _, s := range txt {
		switch {
		case strings.HasPrefix(s, "id="):
			ids++
			id = s[len("id="):]
		case strings.HasPrefix(s, "a="):
			a := s[len("a="):]
			if !wellFormedAddr(a) || len(addrs) >= maxAddrs {
				bad++
				continue
			}
			addrs = append(addrs, a)
		}
	}
	if ids != 1 || !wellFormedID(id) {
		return "", nil, bad, false
	}
	return id, addrs, bad, true
}

// wellFormedID: 1 to maxPeerID printable ASCII characters, no space.
func wellFormedID(id string) bool {
	return len(id) > 0 && len(id) <= maxPeerID && printable(id)
}

// wellFormedAddr: an IP multiaddr ("/ip4/..." or "/ip6/..."), printable
// ASCII, no longer than a TXT string allows. Whether its IP may be dialled
// from the interface it came in on is the engine's check (addrIP).
func wellFormedAddr(a string) bool {
	if len(a) > 253 || !printable(a) {
		return false
	}
	_, ok := addrIP(a)
	return ok
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// txtOf is the TXT of a peer: its id, then the addresses, as many as fit
// in budget bytes.
func txtOf(id string, addrs []string, budget int) []string {
	out := []string{"id=" + id}
	budget -= len(out[0]) + 1
	for _, a := range addrs {
		s := "a=" + a
		if len(s) > 255 || len(s)+1 > budget {
			continue
		}
		budget -= len(s) + 1
		out = append(out, s)
	}
	return out
}

// buildQuery builds a query for the subtype names, with known answers
// (PTR records) as long as the packet stays under maxPacket.
func buildQuery(subtypes []string, known []record) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	size := 12
	for _, s := range subtypes {
		name, err := dnsmessage.NewName(s)
		if err != nil {
			return nil, fmt.Errorf("query name %q: %w", s, err)
		}
		if err := b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET}); err != nil {
			return nil, err
		}
		size += len(s) + 1 + 4
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, k := range known {
		// Without compression, a PTR takes both names, 10 bytes of header
		// and 2 of length: an upper bound.
		if size += len(k.name) + len(k.target) + 2 + 12; size > maxPacket {
			break
		}
		if err := addPTR(&b, k); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// buildResponse builds an authoritative response holding records.
func buildResponse(records []record) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{Response: true, Authoritative: true})
	b.EnableCompression()
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, r := range records {
		var err error
		switch r.typ {
		case dnsmessage.TypePTR:
			err = addPTR(&b, r)
		case dnsmessage.TypeTXT:
			var name dnsmessage.Name
			if name, err = dnsmessage.NewName(r.name); err == nil {
				// The cache-flush bit: this TXT replaces any earlier one
				// (RFC 6762 section 10.2); the instance name is ours alone.
				err = b.TXTResource(dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET | 0x8000, TTL: r.ttl}, dnsmessage.TXTResource{TXT: r.txt})
			}
		default:
			err = fmt.Errorf("record type %v", r.typ)
		}
		if err != nil {
			return nil, fmt.Errorf("response record %s: %w", r.name, err)
		}
	}
	return b.Finish()
}

func addPTR(b *dnsmessage.Builder, r record) error {
	name, err := dnsmessage.NewName(r.name)
	if err != nil {
		return err
	}
	target, err := dnsmessage.NewName(r.target)
	if err != nil {
		return err
	}
	return b.PTRResource(dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET, TTL: r.ttl}, dnsmessage.PTRResource{PTR: target})
}

// recordSize is an upper bound of a record's size in a packet (no
// compression).
func recordSize(r record) int {
	n := len(r.name) + 1 + 10
	switch r.typ {
	case dnsmessage.TypePTR:
		n += len(r.target) + 1
	case dnsmessage.TypeTXT:
		for _, s := range r.txt {
			n += len(s) + 1
		}
	}
	return n
}
