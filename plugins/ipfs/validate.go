package ipfs

import (
	"context"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/sdk"
)

// Values of the pubsub_validation config key.
const (
	// PubsubValidationSkein: every pubsub message must be a Skein
	// announcement or digest that replication.ValidateAnnouncement accepts
	// (strict encoding; inline entries well formed, hashing to their CID,
	// with a verifying signature). The default. A topic the node
	// validates itself (ValidateTopic) is judged by the node's validator
	// instead.
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

var _ sdk.TopicValidator = (*Network)(nil)

// ValidateTopic implements sdk.TopicValidator. v replaces the built-in
// validator of pubsub_validation "skein" on topic: the node that judges
// the topic's messages itself knows their format better. A message this
// node publishes is not passed to v; one from a peer not admitted to a
// closed topic never reaches it (gate.go drops it before validation).
// Validations of one topic run at most validate_concurrency at once, each
// waits at most validate_timeout for v, and no answer by then, or a
// verdict that is none of the three, counts as sdk.VerdictIgnore.
func (n *Network) ValidateTopic(topic string, v sdk.MessageValidator) error {
	if topic == "" {
		return fmt.Errorf("validate topic: empty topic: %w", sdk.ErrInvalidArgument)
	}
	n.valMu.Lock()
	defer n.valMu.Unlock()
	if v == nil {
		delete(n.validators, topic)
	} else {
		n.validators[topic] = v
	}
	return nil
}

func (n *Network) validator(topic string) sdk.MessageValidator {
	n.valMu.RLock()
	defer n.valMu.RUnlock()
	return n.validators[topic]
}

// topicValidator is the gossipsub validator of every topic the network
// joins. It runs before a message is delivered or forwarded, in
// gossipsub's asynchronous pipeline, except for this node's own messages,
// which gossipsub validates inline at Publish. In order:
//
//   - on a closed topic, a message handed over by a peer not admitted
//     (evicted since gate.go let it through) is ignored;
//   - the node's validator (ValidateTopic) judges the others, this node's
//     own excepted;
//   - without one, under pubsub_validation "skein", the message must be a
//     Skein announcement replication.ValidateAnnouncement accepts (own
//     ones too: a node's own invalid Publish fails).
//
// A rejected message is neither delivered here nor forwarded, and costs
// the peer that handed it over peer score (score.go): an honest node never
// relays what its validator rejects, so the peer that does misbehaved.
func (n *Network) topicValidator(self peer.ID, topic string, skein bool, timeout time.Duration) pubsub.ValidatorEx {
	return func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		own := from == self // gossipsub validates own messages with ReceivedFrom set to self
		if !own && n.gate.hidden(from, topic) {
			return pubsub.ValidationIgnore
		}
		if v := n.validator(topic); v != nil {
			if own {
				return pubsub.ValidationAccept
			}
			return n.askValidator(ctx, v, topic, from, m.GetData(), timeout)
		}
		if skein {
			if err := replication.ValidateAnnouncement(m.GetData()); err != nil {
				n.logger.Debug("pubsub message rejected", "topic", topic, "peer", from.String(), "err", err)
				return pubsub.ValidationReject
			}
		}
		return pubsub.ValidationAccept
	}
}

// askValidator runs v and maps its verdict; it answers VerdictIgnore at
// the timeout even if v has not returned (v's goroutine then ends on its
// own, its ctx done).
func (n *Network) askValidator(ctx context.Context, v sdk.MessageValidator, topic string, from peer.ID, data []byte, timeout time.Duration) pubsub.ValidationResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	verdict := make(chan sdk.Verdict, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				n.logger.Error("topic validator panicked", "topic", topic, "panic", fmt.Sprint(r))
				verdict <- sdk.VerdictIgnore
			}
		}()
		verdict <- v(ctx, from.String(), data)
	}()
	select {
	case vd := <-verdict:
		if ctx.Err() != nil {
			vd = sdk.VerdictIgnore // no answer by the deadline
		}
		switch vd {
		case sdk.VerdictAccept:
			return pubsub.ValidationAccept
		case sdk.VerdictReject:
			n.logger.Debug("pubsub message rejected by the node", "topic", topic, "peer", from.String())
			return pubsub.ValidationReject
		case sdk.VerdictIgnore:
			return pubsub.ValidationIgnore
		default:
			n.logger.Warn("topic validator returned an unknown verdict; ignoring the message", "topic", topic, "verdict", int(vd))
			return pubsub.ValidationIgnore
		}
	case <-ctx.Done():
		n.logger.Debug("topic validator did not answer in time; ignoring the message", "topic", topic, "peer", from.String(), "timeout", timeout.String())
		return pubsub.ValidationIgnore
	}
}
