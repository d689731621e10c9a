// Package ble is Skein's Bluetooth Low Energy plugin ("transport.ble"): an
// [sdk.Transport] with the [sdk.PacketTransport] profile, under its own
// multiaddr protocol (/x-ble/<device>@<channel>), and an [sdk.Discovery]
// of the peers its radio hears, so that a node with no network at all
// finds its neighbours and talks to them. The node runs libp2p's Noise and
// yamux over every connection: the plugin only ever carries ciphertext.
//
// # Drivers
//
// A Driver is the radio: advertising, scanning and a small identity read
// for discovery, and packet links for data.
//
//   - driver: bluez (Linux) talks to BlueZ over D-Bus to advertise the
//     Skein service, scan, and serve and read the identity characteristic
//     (peer id and channel), and carries data over L2CAP LE
//     credit-based channels through kernel sockets (AF_BLUETOOTH,
//     SOCK_SEQPACKET, BTPROTO_L2CAP; bluetoothd is not in the data path).
//   - driver: sim is a simulated radio with BLE's limits (31-byte
//     advertisements, MTU, throughput, latency, loss as retransmissions,
//     range, a link limit), seeded and reproducible, with many devices in
//     one process (a medium per name, see SimAir).
//
// # Framing
//
// A connection is cut into frames of at most the link's MTU: kind, a
// 16-bit sequence number, payload (frame.go). A close frame ends a
// connection cleanly; the closing side keeps its link until the peer has
// closed its end (a closed L2CAP channel drops what it has not sent).
//
// # Policies
//
//   - Only the peer with the smaller peer id dials: FindPeers reports a
//     peer with a larger id at once, one with a smaller id only if no link
//     from it came within tie_break_wait.
//   - At most max_links links; a dial beyond fails, an inbound link beyond
//     is closed and logged.
//   - A failed dial to an address backs off (dial_backoff doubling to
//     dial_backoff_max).
//   - Hostile radios: a peer that sends a malformed or out-of-sequence
//     frame, or takes no data for stall_timeout, is cut off with a log
//     line. Scanning remembers at most max_devices devices and reads at
//     most handshakes_per_minute identities; what is refused is counted
//     (Status) and logged at most once per report interval. The bytes
//     buffered per connection are bounded (64 KiB; then the link's flow
//     control holds the peer back).
//
// # Use
//
// Linked in:
//
//	p := ble.New()
//	_, _ = p.Configure(ctx, map[string]any{"driver": "sim", "sim_medium": "lab"})
//	_ = p.Start(ctx)
//	l, _ := p.Listen(ctx, "")           // /x-ble/<l.Addr()>
//	_ = p.Advertise(ctx, "skein/v1", sdk.PeerInfo{ID: peerID})
//	peers, _ := p.FindPeers(ctx, "skein/v1")
//
// In a node, attach the transport to the network (plugins.network.config
// transports: {x-ble: [auto]}) and enable the plugin; `skein init --preset
// ble` writes such a node. Out of process it is served by cmd/skein-ble or
// by the skein binary itself (`skein plugin serve transport.ble`).
// docs/plugins-ble.md has the configuration and the measured figures.
package ble
