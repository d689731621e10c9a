package replication

import (
	"context"
	"errors"
	"sync"

	"github.com/skein-p2p/skein/sdk"
)

// followTopic swaps heads with each proven peer as soon as the network
// reports it joined topic (sdk.TopicPeerNotifier): from then on the
// topic's announcements reach it, and the exchange covers what was
// written before, between the exchange on connecting and the moment
// pubsub knew the peer. Without it, such entries waited for the timed
// re-exchange (reexchange.go).
//
// Only a peer that proved it holds the topic's key on its current
// connection is asked: a join says nothing about membership (any peer may
// announce any subscription), and the proof keeps gating every head
// exchange. A peer that proves itself after joining is exchanged with
// when it proves (ExchangeHeads on connecting proves first).
//
// If the network ends the stream (its plugin restarted), it asks for a
// new one until the topic is no longer replicated; a network that does
// not serve the capability after all is left alone.
func (r *Replicator) followTopic(ctx context.Context, topic string) {
	wait := minBackoff
	for {
		events, err := r.joins.TopicPeerEvents(ctx, topic)
		if err != nil {
			if errors.Is(err, sdk.ErrCapabilityNotServed) {
				return
			}
			r.logger.Debug("topic peer events", "topic", topic, "err", err)
		} else {
			wait = minBackoff
			r.topicJoined(ctx, topic, events)
		}
		if !backoff(ctx, &wait) {
			return
		}
	}
}

// topicJoined handles events until the stream or ctx ends.
func (r *Replicator) topicJoined(ctx context.Context, topic string, events <-chan sdk.TopicPeerEvent) {
	for {
		var ev sdk.TopicPeerEvent
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			ev = e
		}
		if ev.Peer == r.self {
			continue
		}
		r.reported.set(ev.Peer, topic, ev.Joined)
		if !ev.Joined || r.isBlocked(ev.Peer) {
			continue
		}
		if r.proofs.has(ev.Peer, topic) {
			r.topicJoins.Add(1)
			r.exchangeAsync(ev.Peer)
		}
	}
}

// reportedTopics are the topics each connected peer reported joining
// (sdk.TopicPeerNotifier): pubsub knows its subscription, so what this
// node publishes on the topic reaches it. With the peer's membership proof
// on the same topic, a fresh peer needs no head exchange after each
// announcement (exchangeFresh): the announcement itself gets there.
type reportedTopics struct {
	mu     sync.Mutex
	topics map[string]map[string]bool // peer -> topics
}

func (t *reportedTopics) set(peer, topic string, joined bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !joined {
		delete(t.topics[peer], topic)
		return
	}
	if t.topics == nil {
		t.topics = map[string]map[string]bool{}
	}
	if t.topics[peer] == nil {
		t.topics[peer] = map[string]bool{}
	}
	t.topics[peer][topic] = true
}

func (t *reportedTopics) has(peer, topic string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.topics[peer][topic]
}

// forget drops what peer reported (its connection ended: pubsub forgets
// its subscriptions with it, and reports them again on the next).
func (t *reportedTopics) forget(peer string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.topics, peer)
}

// forgetTopic drops topic from every peer (this node left it).
func (t *reportedTopics) forgetTopic(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ts := range t.topics {
		delete(ts, topic)
	}
}

// reachedByPubsub reports whether peer both joined topic (as the network
// reported) and proved it holds the topic's key on this connection: then
// an announcement on topic reaches it without a head exchange.
func (r *Replicator) reachedByPubsub(peer, topic string) bool {
	return r.reported.has(peer, topic) && r.proofs.has(peer, topic)
}
