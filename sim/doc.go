// Package sim builds simulated Skein deployments in one process for tests
// and research: N nodes, each a core/messenger.Messenger over an in-memory
// store and a plugins/simnet node (plugins linked in, links with latency,
// jitter and loss), and multi-member groups of them made in one call, with
// a settled check and per-node and per-group counters. `skein sim` is
// built on it.
//
// What it hides: keystores in a temporary directory, invitations (one per
// joiner, written by the creator), concurrent joins (bounded by
// Config.JoinParallelism), replicator options a simulation wants
// (replication.WithPubsubValidated, an anti-entropy period of N seconds
// so that digests cost O(N), not O(N²), no DHT rendezvous), keystores on
// tmpfs, and the connection graph: every pair connected up to
// FullMeshLimit nodes, otherwise each node dials Config.Degree others
// (seeded) plus its ring neighbours, as libp2p's connection limits keep a
// node's peers bounded.
//
// What the in-process nodes share (a simulation's economies, which a node
// alone in its process does not get; docs/experiments.md): the process's
// cache of verified signatures (internal/sigcache: a signature one node
// verified is not verified again by the others), core/log's tables of
// decoded entries and links (one decoded copy of each entry for all
// nodes, not one per node), and simnet's one copy of each block. Each node
// keeps its own store (with group key prefixes abbreviated: shortKeys),
// log index, have-set and group state, and runs up to ParallelJoins joins
// of a log at once (a node's default is 4).
//
// A group is settled when every current member sees exactly the current
// members, is in the same epoch as the creator, and holds every message
// sent through Group.Send. Deliveries are followed from each member's
// subscription, so Group.Delivery and Group.WaitDelivered give the time
// from Send to the last member.
//
// Usage sketch:
//
//	c, err := sim.New(ctx, sim.Config{Nodes: 100, Link: simnet.Link{Latency: 20 * time.Millisecond, Loss: 0.01},
//		Progress: func(p sim.Progress) { fmt.Fprintf(os.Stderr, "\r%s %d/%d", p.Phase, p.Done, p.Total) }})
//	defer c.Close()                                  // seconds, even for 1,000 nodes
//	g, err := c.NewGroup(ctx, nil)                   // every node; returns once settled
//	msg, err := g.Send(ctx, c.Node(3), []byte("hi"))
//	took, err := g.WaitDelivered(ctx, msg.CID)       // Send to the last member
//	err = g.Remove(ctx, c.Node(0), c.Node(7))        // rekey; waits until settled
//	s := g.Settled(ctx)                              // s.Done(), s.Lagging
//	gs := g.Stats()                                  // sent, deliveries, members
//	ns := c.Node(3).Stats()                          // messages and simnet traffic
//	ts := c.Network().TopicStats()                   // per topic
//
// Config.Progress is called as NewGroup, WaitSettled, WaitDelivered and
// Close advance; while settling, Progress.Detail names the first member not
// settled and what it lacks. BenchmarkGroupOfN measures issue 13's targets
// (docs/performance.md, "Groups of a thousand").
//
// Every messenger call works on Node.Messenger; the network (partitions,
// per-pair links, Stop/Start of a node) on Cluster.Network and Node.Net.
package sim
