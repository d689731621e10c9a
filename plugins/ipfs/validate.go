package ipfs

import (
	"context"
	"log/slog"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/skein-p2p/skein/core/replication"
)

// Values of the pubsub_validation config key.
const (
	// PubsubValidationSkein: every pubsub message must be a Skein
	// announcement or digest that replication.ValidateAnnouncement accepts
	// (strict encoding; inline entries well formed, hashing to their CID,
	// with a verifying signature). The default.
	PubsubValidationSkein = "skein"
	// PubsubValidationNone: pubsub carries any bytes (the plugin used as
	// a generic pubsub).
	PubsubValidationNone = "none"
)

// PubsubValidated reports whether the configured network validates every
// pubsub message as a Skein announcement; a node passes it to
// replication.WithPubsubValidated.
func (n *Network) PubsubValidated() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg.PubsubValidation == PubsubValidationSkein
}

// announcementValidator is the gossipsub topic validator of
// pubsub_validation "skein". A message it rejects is neither delivered
// here nor forwarded, so an honest node never relays a malformed
// announcement or a forged inline entry, and the peer that hands one over
// is the one that misbehaved. It also runs on this node's own Publish,
// which then fails.
func announcementValidator(logger *slog.Logger) func(context.Context, peer.ID, *pubsub.Message) pubsub.ValidationResult {
	return func(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if err := replication.ValidateAnnouncement(m.GetData()); err != nil {
			logger.Debug("pubsub message rejected", "topic", m.GetTopic(), "peer", from.String(), "err", err)
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	}
}

// Peer-score thresholds of pubsub_validation "skein". A peer's score falls
// only for messages it delivered that failed validation (gossipsub's P4:
// weight times the square of its decaying count), which an honest peer
// never sends: one such message costs 10, two 40, three 90. Below
// GossipThreshold no gossip is exchanged with the peer, below
// PublishThreshold it gets none of this node's publications, below
// GraylistThreshold everything it sends is ignored.
const (
	scoreGossipThreshold   = -20
	scorePublishThreshold  = -40
	scoreGraylistThreshold = -80
	// invalidMessageWeight and invalidMessageDecay: the per-message
	// penalty and how the count decays every scoreDecayInterval (0.99 a
	// second: halved in about 70 s).
	invalidMessageWeight = -10
	invalidMessageDecay  = 0.99
	scoreDecayInterval   = time.Second
	// scoreRetain keeps a disconnected peer's score, so that reconnecting
	// does not wipe it.
	scoreRetain = 10 * time.Minute
)

// peerScoreOption enables gossipsub peer scoring with only the invalid
// message penalty active; every other component (mesh time, deliveries,
// IP colocation, behaviour) stays off, so an honest peer's score is 0
// whatever its address (tests put every peer on 127.0.0.1).
func peerScoreOption() pubsub.Option {
	return pubsub.WithPeerScore(&pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		Topics:               map[string]*pubsub.TopicScoreParams{}, // set per topic as it is joined
		AppSpecificScore:     func(peer.ID) float64 { return 0 },
		DecayInterval:        scoreDecayInterval,
		DecayToZero:          0.01,
		RetainScore:          scoreRetain,
	}, &pubsub.PeerScoreThresholds{
		SkipAtomicValidation: true,
		GossipThreshold:      scoreGossipThreshold,
		PublishThreshold:     scorePublishThreshold,
		GraylistThreshold:    scoreGraylistThreshold,
	})
}

// topicScoreParams are the score parameters of every validated topic.
func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshQuantum:              time.Second, // unused (weight 0), but gossipsub divides by it
		InvalidMessageDeliveriesWeight: invalidMessageWeight,
		InvalidMessageDeliveriesDecay:  invalidMessageDecay,
	}
}
