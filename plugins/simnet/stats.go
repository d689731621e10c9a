package simnet

import (
	"slices"
	"sync"
	"sync/atomic"
)

// NodeStats counts one node's traffic.
type NodeStats struct {
	Published uint64 // Publish calls by this node
	Sent      uint64 // pubsub copies this node put on links (own and relayed)
	Received  uint64 // pubsub copies that arrived here (before deduplication)
	Duplicate uint64 // copies that arrived here again and were dropped
	Delivered uint64 // copies handed to this node's subscribers
	Lost      uint64 // copies this node sent that link loss dropped
	Overflow  uint64 // copies dropped at this node's full queues
	Gossip    uint64 // gossip (IHAVE) notices this node sent
	Fetched   uint64 // blocks this node fetched from peers
	Served    uint64 // blocks peers fetched from this node
	Requests  uint64 // direct requests this node sent that were answered
	Answered  uint64 // direct requests this node answered
}

// TopicStats counts one topic's pubsub traffic across the network.
type TopicStats struct {
	Topic     string
	Published uint64
	Sent      uint64
	Lost      uint64
	Overflow  uint64
	Duplicate uint64
	Delivered uint64
}

type nodeCounters struct {
	published, sent, received, duplicate, delivered, lost, overflow, gossip,
	fetched, served, requests, answered atomic.Uint64
}

func (c *nodeCounters) snapshot() NodeStats {
	return NodeStats{Published: c.published.Load(), Sent: c.sent.Load(), Received: c.received.Load(),
		Duplicate: c.duplicate.Load(), Delivered: c.delivered.Load(), Lost: c.lost.Load(),
		Overflow: c.overflow.Load(), Gossip: c.gossip.Load(), Fetched: c.fetched.Load(),
		Served: c.served.Load(), Requests: c.requests.Load(), Answered: c.answered.Load()}
}

type topicCounters struct {
	published, sent, lost, overflow, duplicate, delivered atomic.Uint64
}

// topicStats keeps a counter set per topic.
type topicStats struct {
	mu sync.Mutex
	m  map[string]*topicCounters
}

func (t *topicStats) get(topic string) *topicCounters {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*topicCounters{}
	}
	c := t.m[topic]
	if c == nil {
		c = &topicCounters{}
		t.m[topic] = c
	}
	return c
}

func (t *topicStats) all() []TopicStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]TopicStats, 0, len(t.m))
	for name, c := range t.m {
		out = append(out, TopicStats{Topic: name, Published: c.published.Load(), Sent: c.sent.Load(),
			Lost: c.lost.Load(), Overflow: c.overflow.Load(), Duplicate: c.duplicate.Load(), Delivered: c.delivered.Load()})
	}
	slices.SortFunc(out, func(a, b TopicStats) int {
		if a.Topic < b.Topic {
			return -1
		}
		if a.Topic > b.Topic {
			return 1
		}
		return 0
	})
	return out
}

// Stats returns the node's traffic counters.
func (nd *Node) Stats() NodeStats { return nd.counters.snapshot() }

// TopicStats returns the pubsub counters of every topic published on,
// sorted by topic.
func (n *Network) TopicStats() []TopicStats { return n.topics.all() }
