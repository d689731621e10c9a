// Package ipfs is Skein's network plugin (ID "network.ipfs"): a libp2p host
// with TCP, QUIC and WebSocket transports, Noise, yamux, relay v2 client and
// hole punching, AutoNAT, a resource manager and a connection manager; a
// Kademlia DHT (client or server, on Skein's own protocol prefix so it never
// joins the public IPFS DHT unless asked), gossipsub, and bitswap over a
// persistent blockstore.
//
// It implements sdk.Plugin and sdk.Network. Linked in:
//
//	n := ipfs.New()
//	diags, err := n.Configure(ctx, map[string]any{"data_dir": dir})
//	err = n.Start(ctx)
//	defer n.Stop(ctx)
//	err = n.PutBlocks(ctx, blocks)
//
// Transport plugins: the network implements sdk.TransportAttacher. A
// transport attached under a protocol listed in the config key
// "transports" becomes a libp2p transport with its own multiaddr protocol
// (its Protocol() name; code 0x300000 + sha256(name)[0:4] mod 0x100000,
// see ProtocolCode; the transport address percent-escaped as the value):
// every connection is upgraded by the host's upgrader (Noise, yamux), the
// host listens on the listed addresses and dials peers' addresses of that
// protocol.
//
// Wanted peers are kept connected: the bootstrap peers and every peer the
// node connected to with Connect (at most redial_max_peers of those, the
// least recently wanted forgotten first). When one is not connected
// (libp2p's connectedness events tell, no polling), it is dialled again 1 s
// later, then twice as late after each failure up to redial_max_backoff
// (default 1 min), with up to a fifth of jitter added, never subtracted;
// the backoff starts over after a connection that lasted 10 s is lost. A
// peer blocked with BlockPeer is not dialled while the block lasts. So two
// nodes find each other again after a partition outlasts their
// connections. The peers asked for with Connect are remembered in
// data_dir/wanted-peers.json (0600, most recent first, with when each was
// last connected; forgotten after 30 days without a connection), so a
// restarted node dials them again by itself. Connect with addresses keeps
// only an address that answered (a peer connected already is dialled on
// the given address itself); Connect with no address remembers a peer
// (one that dialled us included) with the addresses it listens on, as
// identify reported them: the messenger does so for every peer met in a
// group. redial_max_backoff 0 turns this off.
//
// The peer identity is a network key of its own (data_dir/network.key), never
// the account key, so an observer of the network cannot link a peer to an
// account.
//
// Pubsub messages are published unsigned (StrictNoSign) with a content-hash
// message ID: everything Skein publishes is a set of log heads and entries
// that the log layer signs and verifies itself, so pubsub's own Ed25519
// signatures (measured at ~78% of gossipsub's CPU) add nothing but cost.
//
// Closed topics (sdk.TopicGate, gate.go): toward a peer not admitted to a
// closed topic the node behaves as a node that does not subscribe to it.
// Gossipsub's peer filter keeps the peer out of the topic's mesh and
// gossip; every RPC written to it passes a filter on gossipsub's outbound
// streams that strips the topic's subscription, messages, IHAVE, GRAFT and
// PRUNE (a stripped subscription is sent when the peer is admitted); what
// it sends on the topic is dropped before gossipsub's seen-cache and
// validation. Admission ends with the peer's last connection.
//
// The node's validator (sdk.TopicValidator) judges every message of a
// topic before delivery or forwarding, asynchronously (validate_concurrency,
// validate_timeout). Peer scoring (sdk.PeerScorer, score.go) adds the
// node's application score to gossipsub's invalid-message penalty; below
// the configured thresholds a peer is pruned, loses gossip, is graylisted,
// then cut off. Direct requests (sdk.DirectMessenger, limits.go) grow their
// frames only as bytes arrive, accounted to libp2p's resource manager
// (service "skein.direct", limits in config), and a stream that stalls in
// the middle of a frame is reset.
//
// Because a pubsub message's sender (sdk.PubsubMessage.From) is the peer
// that forwarded it, not its author, every topic the plugin joins has a
// gossipsub validator (config pubsub_validation, default "skein"):
// replication.ValidateAnnouncement must accept the message (strict
// decoding; inline entries well formed, hashing to their CID and correctly
// signed) or it is neither delivered nor forwarded, and the peer that
// handed it over loses peer score (graylisted after a few). So an honest
// node never relays bad data, and the peer that hands it over is the one
// misbehaving: a node over this plugin passes
// replication.WithPubsubValidated(n.PubsubValidated()). "none" makes the
// plugin a generic pubsub. A topic with a node validator is judged by it
// instead. Own publications go to every topic peer (flood publishing), so
// one made before the mesh forms still arrives.
//
// libp2p's identify tells peers the agent version "skein/<version>"
// (WithAgentVersion).
package ipfs
