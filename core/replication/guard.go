package replication

import (
	"context"
	"fmt"

	"github.com/skein-p2p/skein/sdk"
)

// guardTopic closes topic (sdk.TopicGate: only peers that proved the
// topic's secret are admitted to its mesh) and registers the replicator's
// validator of its messages (sdk.TopicValidator), when the network can.
func (r *Replicator) guardTopic(ctx context.Context, keys *TopicKeys) error {
	if r.gate != nil {
		if err := r.gate.CloseTopic(ctx, keys.Topic); err != nil {
			return fmt.Errorf("close topic: %w", err)
		}
	}
	if r.judge != nil {
		if err := r.judge.ValidateTopic(keys.Topic, r.validator(keys)); err != nil {
			return fmt.Errorf("validate topic: %w", err)
		}
	}
	return nil
}

// validator judges a pubsub message of the topic of keys before the
// network delivers or forwards it: what does not open under the topic's
// key, or opens to a malformed announcement or a malformed or badly signed
// inline entry, is rejected (only a peer that proved the key is in the
// mesh, and it validates too: handing such a message over is its fault);
// an announcement of a log this replica does not replicate is ignored.
func (r *Replicator) validator(keys *TopicKeys) sdk.MessageValidator {
	return func(_ context.Context, from string, data []byte) sdk.Verdict {
		if r.isBlocked(from) {
			return sdk.VerdictIgnore
		}
		a, err := keys.Open(data)
		if err != nil {
			r.logger.Debug("pubsub message rejected", "topic", keys.Topic, "peer", from, "err", err)
			return sdk.VerdictReject
		}
		rep := r.replica(a.Log)
		if rep == nil || rep.topic != keys.Topic {
			return sdk.VerdictIgnore
		}
		for i, b := range a.Inline {
			if err := validInline(b); err != nil {
				r.logger.Debug("pubsub message rejected", "topic", keys.Topic, "peer", from, "inline", i, "err", err)
				return sdk.VerdictReject
			}
		}
		if rep.selfContained(a) {
			return sdk.VerdictAccept
		}
		// Heads to fetch: the message is used here but not forwarded,
		// so a peer that hands one over is its author, answerable for
		// serving the heads; it pays from its fetch budget.
		if r.fetchAllowed(from, keys.Topic) {
			rep.received(from, a.Heads, a.Inline, viaAuthored)
		}
		return sdk.VerdictIgnore
	}
}
