// Package replication keeps Skein's Merkle logs in sync between the peers
// that replicate them, over any sdk.Network. It imports no libp2p or boxo:
// it talks to sdk.Network and to its optional capabilities
// (sdk.PeerNotifier, sdk.DirectMessenger, sdk.PeerBlocker, sdk.TopicGate,
// sdk.TopicValidator, sdk.PeerScorer), using each when the network has it.
//
// Every replicated log has a pubsub topic derived from a secret its
// members share (Topic: it reveals neither the secret nor the group's
// public key) and a wire id derived from the topic and a channel name
// (LogIDFor), so several logs can share one topic. Three mechanisms move
// heads, and bitswap (the network's block getter) moves the entries they
// name:
//
//   - Announcements: after each local append the writer publishes its heads
//     on the topic, with its newest small entries inline. A receiver joins
//     the heads, reading inline entries first and fetching the rest from
//     the network.
//   - Head exchange: when a peer connects, and on demand (Sync), a direct
//     "/skein/heads/1" request swaps the heads of every log both sides
//     replicate; each side joins what the other has.
//   - Anti-entropy: every interval each log's heads are published as a
//     digest, joins of heads still missing are retried, and heads are
//     exchanged directly with a few peers, so that a lost announcement
//     never leaves a replica behind.
//
// Nothing of a log is told to or asked of a peer that has not proved, on
// its current connection, that it holds the log's secret: the membership
// proof (ProofProtocol, Prove) runs with every peer that connects, and the
// head exchange, the entries protocol and admission to the topic's mesh
// (sdk.TopicGate, when the network has it) follow only for the topics
// both proved; a peer that proved none gets the answers a log that does
// not exist gets. Announcements are sealed under a key derived from the
// secret (DeriveTopicKeys, TopicKeys.Seal), and the replicator judges
// every message of its topics (sdk.TopicValidator): what does not open is
// rejected, and an announcement naming heads to fetch is used but never
// forwarded, costing its author a token of a per-peer head fetch budget;
// what a peer claims and does not serve lowers its score (sdk.PeerScorer),
// and heads nobody serves are given up (LogStatus.GivenUp).
//
// A replica far behind does not walk the DAG one bitswap round trip per
// level: a join of heads from a head exchange, a digest or a retry asks
// the peer that named them for the missing entries in batches over a
// direct "/skein/entries/1" request (EntriesRequest, EntriesResponse;
// WithBulkFetch), and falls back to the block getter when the peer cannot
// serve. Only peers that replicate the log are answered.
//
// Everything a peer sends is checked before it is used: messages decode
// strictly (DecodeAnnouncement, DecodeHeadsExchange, DecodeEntriesRequest,
// DecodeEntriesResponse), and every entry is verified by the log's Join
// (signature, hash, write access, clock) before it enters. A peer is cut
// off for a while (its messages ignored and, if the network can, its
// connections closed) only when it is provably the author of bad data (see
// Misbehaviour): what it sent in a head exchange or an entries response,
// or, when every honest node's network validates pubsub messages with
// ValidateAnnouncement (WithPubsubValidated), a malformed announcement or
// a malformed or badly signed inline entry it handed over. Over pubsub the
// sender a message arrives from may be a relay, so anything else found bad
// there is dropped and logged, and that peer is asked for its heads
// directly, where a liar is caught. docs/replication.md specifies the
// protocol.
//
// Usage sketch:
//
//	r, err := replication.New(network, replication.WithAntiEntropyInterval(10*time.Second))
//	err = r.Start(ctx)
//	defer r.Close()
//	// Logs keep their blocks in the network's blockstore so peers can fetch them.
//	l, err := log.Open(ctx, id, r.BlockStore(), kv, signer, access)
//	logID, err := r.Add(groupSecret, "messages", l)
//	l.Append(ctx, payload)        // announced to the topic's subscribers
//	st := r.Status()              // local and remote heads, missing entries, last sync
package replication
