// Package simnet is a simulated network (plugin ID "network.simnet"): many
// nodes in one process, each an sdk.Network with the optional capabilities
// sdk.PeerNotifier, sdk.DirectMessenger and sdk.PeerBlocker, joined by
// links with latency, jitter, bandwidth and pubsub loss, which tests and research
// experiments can partition and heal.
//
// What it models:
//   - Pubsub, in one of two modes (WithPubsub). PubsubFlood: a publish
//     reaches every other node subscribed to the topic over a live
//     connection, straight from the publisher (From is the publisher).
//     PubsubMesh, gossipsub's bounded mesh: each node keeps, per topic,
//     about D live subscribed peers (MeshParams: D, Dlo, Dhi); a publisher
//     sends to its live subscribed peers, every node forwards a message it
//     has not seen to its mesh, and each heartbeat gossips the ids of
//     recent messages to Dlazy others, which fetch the ones they lack; From
//     is the peer a copy came from. The default, PubsubAuto, is the mesh
//     above MeshThreshold (20) nodes. A copy is lost with its link's loss,
//     arrives after its latency (and jitter), in publication order on each
//     directed link. A subscriber that does not keep up loses messages
//     beyond its queue, as with gossipsub. WithValidator makes every node
//     check what it delivers and forwards.
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
// Cost: every message in flight waits in one of a few schedulers (2 per
// CPU, at least 4 goroutines for the whole network; one also runs the mesh
// heartbeat; each receiving node's copies go through one, so a link keeps
// its order); a node costs one
// goroutine per subscription and per event stream, none per link, and its
// duplicate filter is a 256-message window per origin. Peers() and the
// mesh follow an index of live connections, so a node's work follows its
// own connections, not the network's size. A block's bytes are held once
// for the whole network, whichever nodes store it (they are immutable and
// named by their hash). Closing is immediate.
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
// Network.Stats counts pubsub copies published, sent, lost, received,
// duplicated, delivered (per subscription: see Stats), blocks fetched and
// requests answered; Node.Stats counts the same per node and
// Network.TopicStats per topic, for experiments.
// Node.Bytes counts the payload bytes each node sent and received.
package simnet
