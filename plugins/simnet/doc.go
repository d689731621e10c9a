// Package simnet is a simulated network (plugin ID "network.simnet"): many
// nodes in one process, each an sdk.Network with the optional capabilities
// sdk.PeerNotifier, sdk.DirectMessenger and sdk.PeerBlocker, joined by
// links with latency, jitter, bandwidth and pubsub loss, which tests and research
// experiments can partition and heal.
//
// What it models:
//   - Pubsub: a publish reaches every other node subscribed to the topic
//     over a live connection (a full mesh: From is always the publisher),
//     after the link's latency, unless the link's loss drops it. Messages on
//     one directed link are delivered in the order they were published. A
//     subscriber that does not keep up loses messages beyond its queue, as
//     with gossipsub.
//   - Blocks (bitswap): GetBlocks serves from the local store, else from any
//     live peer that has the block (one round trip), and otherwise keeps
//     asking until the context ends, as bitswap does. Fetched blocks are
//     stored locally and served on. Block transfers are never lost.
//   - Content routing (a DHT): Provide records the node as a provider;
//     FindProviders returns the live peers holding the block, then the
//     providers it can reach with no connection: up, on the same side of
//     any partition, neither blocking the other.
//   - Direct requests: reliable, one round trip over a live connection.
//   - Connections: Connect dials a peer; a connection is live while both
//     nodes are up, on the same side of a partition, and neither blocks the
//     other. Transitions are reported as peer events.
//
// Loss decisions come from a per-link generator seeded from the network's
// seed, so a run's losses are reproducible up to the interleaving of
// concurrent publishers.
//
// Usage sketch:
//
//	net := simnet.New(simnet.WithSeed(7), simnet.WithDefaultLink(simnet.Link{Latency: 2 * time.Millisecond, Loss: 0.2}))
//	defer net.Close()
//	a, _ := net.AddNode("a")
//	b, _ := net.AddNode("b")
//	net.ConnectAll()
//	net.Partition([]string{"a"})   // a alone on one side
//	net.Heal()
//	b.Stop(ctx); b.Start(ctx)      // b's network restarts: its subscriptions end
//	net.SetLink("a", "b", simnet.Link{Loss: 1}) // every pubsub message a<->b lost
//
// Stats counts pubsub messages published, sent, lost, overflowed and
// delivered, blocks fetched and requests answered, for experiments;
// Node.Bytes counts the payload bytes each node sent and received.
package simnet
