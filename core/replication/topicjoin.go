package replication

import (
	"context"
	"errors"

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
		if !ev.Joined || ev.Peer == r.self || r.isBlocked(ev.Peer) {
			continue
		}
		if r.proofs.has(ev.Peer, topic) {
			r.topicJoins.Add(1)
			r.exchangeAsync(ev.Peer)
		}
	}
}
