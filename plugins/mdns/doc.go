// Package mdns is Skein's LAN discovery plugin ("discovery.mdns"): an
// [sdk.Discovery] on multicast DNS (RFC 6762) with DNS-SD names (RFC 6763),
// so that nodes on one link find each other with nothing configured.
//
// It is written on golang.org/x/net's DNS message codec and multicast
// sockets rather than on go-libp2p's mdns or zeroconf, because it must
// bind to chosen interfaces, answer each interface with that interface's
// addresses only, and keep bounded state on a hostile LAN (zeroconf's
// browser keeps every instance it hears, and answers every interface with
// the same records).
//
// # What goes on the wire
//
// A search multicasts a PTR query for "_<ns>._sub._skein._udp.local.",
// where <ns> is the first 8 bytes of sha256(namespace) in hex (a node uses
// the namespace "skein/v1"). An advertisement answers it, on the interface
// the query came in on, with
//
//	_<ns>._sub._skein._udp.local.  PTR  <instance>._skein._udp.local.
//	<instance>._skein._udp.local.  TXT  "id=<network peer id>" "a=<multiaddr>" ...
//
// where <instance> is 8 random bytes, new for each advertisement, and the
// addresses are those of the advertised ones a host on that interface can
// dial: IP addresses on the interface's subnets (IPv4 link-local
// included), never loopback except on a loopback interface, never IPv6
// link-local, never another interface's. Nothing else: no host name, no
// account key, no group, no topic. docs/threat-model.md says what a LAN
// observer learns from it.
//
// Queries back off from 1 s to the query interval and carry known answers,
// so a LAN at rest exchanges little more than one query per node per
// interval. An advertisement is announced twice when it starts (and on an
// interface that appears) and says goodbye (TTL 0) when it ends.
//
// # A hostile LAN
//
// Every received packet is bounded: at most 9000 bytes read, 16 questions
// and 64 PTR/TXT records looked at, 16 addresses per peer, 128 bytes per
// peer id. Packets from another interface, from a sender not on the
// interface's subnets or not from port 5353 are dropped before they are
// parsed. Addresses a host on the link could not be dialled at (other
// subnets, loopback, multicast) are dropped, so a neighbour cannot point
// the node's dials at the Internet or at the machine itself. Records
// naming a peer id this plugin advertises are dropped. Peers are kept only
// for namespaces being searched, at most max_cached_peers of them, each
// sender introducing at most max_peers_per_source new ones per query
// interval; at most max_peers_per_interval peers are reported to the node
// per interval, the rest wait. What is refused is counted (Status) and
// logged once per interval at most.
//
// # Configuration (the plugin's subtree of the node config)
//
//	service:                DNS-SD service type (default "_skein._udp")
//	interfaces:             interface names (default: every up, multicast,
//	                        non-loopback interface, re-scanned every 5 s)
//	query_interval:         30s (1s to 1h)
//	max_peers_per_interval: 32
//	max_peers_per_source:   8
//	max_cached_peers:       512
//
// Usage, linked in:
//
//	p := mdns.New()
//	if _, err := p.Configure(ctx, map[string]any{"interfaces": []any{"eth0"}}); err != nil { ... }
//	if err := p.Start(ctx); err != nil { ... }
//	defer p.Stop(context.Background())
//	_ = p.Advertise(ctx, "skein/v1", sdk.PeerInfo{ID: id, Addrs: addrs})
//	peers, _ := p.FindPeers(ctx, "skein/v1")
//
// Out of process it is served by cmd/skein-mdns, or by the skein binary
// itself (`skein plugin serve discovery.mdns`).
package mdns
