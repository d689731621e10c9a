package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// The host side of TopicGate, TopicValidator and PeerScorer (see
// remote_network_caps.go for the others).

var (
	_ TopicGate      = (*remoteNetwork)(nil)
	_ TopicValidator = (*remoteNetwork)(nil)
	_ PeerScorer     = (*remoteNetwork)(nil)
)

// maxHostValidations bounds the validations one validator stream runs at
// once on the host; a plugin that asks for more gets VerdictIgnore for
// the excess at once.
const maxHostValidations = 256

// CloseTopic implements TopicGate over the wire.
func (n *remoteNetwork) CloseTopic(ctx context.Context, topic string) error {
	op := "network close topic " + topic
	if !n.caps.topicGate {
		return fmt.Errorf("%s: %w", op, ErrCapabilityNotServed)
	}
	if topic == "" {
		return fmt.Errorf("%s: empty topic: %w", op, ErrInvalidArgument)
	}
	_, err := n.c.CloseTopic(ctx, &wirev1.TopicRequest{Topic: topic})
	return capError(op, err)
}

// AdmitPeer implements TopicGate over the wire.
func (n *remoteNetwork) AdmitPeer(ctx context.Context, topic, peer string, admit bool) error {
	op := fmt.Sprintf("network admit peer %s to %s", peer, topic)
	if !n.caps.topicGate {
		return fmt.Errorf("%s: %w", op, ErrCapabilityNotServed)
	}
	if topic == "" || peer == "" {
		return fmt.Errorf("%s: a topic and a peer are required: %w", op, ErrInvalidArgument)
	}
	_, err := n.c.AdmitPeer(ctx, &wirev1.AdmitPeerRequest{Topic: topic, Peer: peer, Admit: admit})
	return capError(op, err)
}

// ScorePeer implements PeerScorer over the wire.
func (n *remoteNetwork) ScorePeer(ctx context.Context, peer string, delta float64, reason string) error {
	op := "network score peer " + peer
	if !n.caps.peerScorer {
		return fmt.Errorf("%s: %w", op, ErrCapabilityNotServed)
	}
	if peer == "" || math.IsNaN(delta) || math.IsInf(delta, 0) {
		return fmt.Errorf("%s: a peer and a finite delta are required: %w", op, ErrInvalidArgument)
	}
	_, err := n.c.ScorePeer(ctx, &wirev1.ScorePeerRequest{Peer: peer, Delta: delta, Reason: reason})
	return capError(op, err)
}

// ValidateTopic implements TopicValidator: it opens a validator stream for
// topic on which the plugin sends the messages to judge, and returns once
// the plugin has registered the validator. A nil v ends the stream, which
// removes the plugin's validator. The registration lasts until it is
// replaced or removed, or the plugin process ends (a supervising host
// registers again on the new process).
func (n *remoteNetwork) ValidateTopic(topic string, v MessageValidator) error {
	op := "network validate topic " + topic
	if !n.caps.topicValidator {
		return fmt.Errorf("%s: %w", op, ErrCapabilityNotServed)
	}
	if topic == "" {
		return fmt.Errorf("%s: empty topic: %w", op, ErrInvalidArgument)
	}
	return n.validators.set(n.c, topic, v)
}

// validatorRegistry holds a RemotePlugin's open validator streams, one per
// topic, shared by every Network value of the plugin.
type validatorRegistry struct {
	root context.Context // ends when the plugin process exits

	mu      sync.Mutex // serialises set
	streams map[string]*hostValidatorStream

	subsMu sync.Mutex
	subs   map[string]map[*hostSubscription]struct{} // the host's open subscriptions per topic
	// handedOver counts the messages handed over with their verdict.
	handedOver atomic.Int64
}

func newValidatorRegistry(root context.Context) *validatorRegistry {
	return &validatorRegistry{root: root, streams: map[string]*hostValidatorStream{},
		subs: map[string]map[*hostSubscription]struct{}{}}
}

// hostSubscriptionQueue bounds the messages queued for one host
// subscription between the plugin (stream and handovers) and its reader.
const hostSubscriptionQueue = 256

// hostSubscription is one Subscribe of the host: its queue takes the
// messages of the plugin's Subscribe stream and those the topic's
// validator accepted and handed over itself (delivery in verdicts).
type hostSubscription struct {
	in     chan PubsubMessage
	mu     sync.RWMutex // held for reading by a handover, for writing by close
	closed bool
}

func (r *validatorRegistry) addSub(topic string, s *hostSubscription) {
	r.subsMu.Lock()
	defer r.subsMu.Unlock()
	if r.subs[topic] == nil {
		r.subs[topic] = map[*hostSubscription]struct{}{}
	}
	r.subs[topic][s] = struct{}{}
}

// closeSub unregisters s: no handover reaches it after this returns.
func (r *validatorRegistry) closeSub(topic string, s *hostSubscription) {
	r.subsMu.Lock()
	delete(r.subs[topic], s)
	if len(r.subs[topic]) == 0 {
		delete(r.subs, topic)
	}
	r.subsMu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// handOver queues m for the host's subscription of its topic if there is
// exactly one (the plugin spares only a topic's one Subscribe stream) and
// its queue has room, and reports whether it did. It never waits.
func (r *validatorRegistry) handOver(m PubsubMessage) bool {
	r.subsMu.Lock()
	var s *hostSubscription
	if len(r.subs[m.Topic]) == 1 {
		for x := range r.subs[m.Topic] {
			s = x
		}
	}
	r.subsMu.Unlock()
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false
	}
	select {
	case s.in <- m:
		r.handedOver.Add(1)
		return true
	default:
		return false
	}
}

// hostValidatorStream is one open ValidateTopic stream on the host side.
type hostValidatorStream struct {
	cancel context.CancelFunc
	stream grpc.BidiStreamingClient[wirev1.ValidatorVerdict, wirev1.ValidationRequest]
	done   chan struct{} // closed when the receive loop has returned
	sendMu sync.Mutex
	slots  chan struct{} // bounds the validations running at once
	// handOver, if the plugin takes delivery in verdicts, hands an
	// accepted message to the host's subscription of the topic.
	handOver func(PubsubMessage) bool
}

// closeAndWait ends the stream politely (the plugin removes its
// validator) and waits a bounded time before cancelling it.
func (s *hostValidatorStream) closeAndWait() {
	s.sendMu.Lock()
	_ = s.stream.CloseSend()
	s.sendMu.Unlock()
	t := time.NewTimer(registerTimeout)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
	}
	s.cancel()
}

func (r *validatorRegistry) set(c wirev1.NetworkClient, topic string, v MessageValidator) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.streams[topic]
	if old != nil {
		select {
		case <-old.done: // ended with its plugin process
			old.cancel()
			delete(r.streams, topic)
			old = nil
		default:
		}
	}
	if v == nil {
		if old != nil {
			delete(r.streams, topic)
			old.closeAndWait()
		}
		return nil
	}
	s, err := openValidatorStream(r, c, topic, v)
	if err != nil {
		return err
	}
	r.streams[topic] = s
	if old != nil {
		// The plugin has already swapped in the new stream's validator,
		// so ending the old one does not remove it.
		old.cancel()
	}
	return nil
}

func openValidatorStream(r *validatorRegistry, c wirev1.NetworkClient, topic string, v MessageValidator) (*hostValidatorStream, error) {
	op := "network validate topic " + topic
	ctx, cancel := context.WithCancel(r.root)
	stream, err := c.ValidateTopic(ctx)
	if err != nil {
		cancel()
		return nil, capError(op, err)
	}
	s := &hostValidatorStream{cancel: cancel, stream: stream, done: make(chan struct{}), slots: make(chan struct{}, maxHostValidations)}
	if err := stream.Send(&wirev1.ValidatorVerdict{Topic: topic, Deliver: true}); err != nil {
		cancel()
		if errors.Is(err, io.EOF) {
			if _, rerr := stream.Recv(); rerr != nil {
				err = rerr
			}
		}
		return nil, capError(op, err)
	}
	timer := time.AfterFunc(registerTimeout, cancel)
	ack, err := stream.Recv()
	stopped := timer.Stop()
	if err != nil || !ack.GetRegistered() {
		cancel()
		switch {
		case err == nil:
			return nil, fmt.Errorf("%s: plugin did not acknowledge the validator", op)
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("%s: plugin ended the stream before registering", op)
		case !stopped:
			return nil, fmt.Errorf("%s: plugin did not register the validator within %s: %w", op, registerTimeout, ErrPluginUnavailable)
		}
		return nil, capError(op, err)
	}
	if ack.GetDeliver() {
		s.handOver = r.handOver
	}
	go s.serve(ctx, topic, v)
	return s, nil
}

// serve runs v for each message the plugin sends, concurrently (at most
// maxHostValidations at once), and sends back the verdicts.
func (s *hostValidatorStream) serve(ctx context.Context, topic string, v MessageValidator) {
	defer close(s.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		req, err := s.stream.Recv()
		if err != nil {
			return
		}
		if req.GetId() == 0 {
			continue // not a request (a newer plugin's message kind)
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.send(&wirev1.ValidatorVerdict{Id: req.GetId(), Verdict: wirev1.Verdict_VERDICT_IGNORE})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.slots }()
			verdict := judge(ctx, topic, v, req)
			delivered := false
			if verdict == VerdictAccept && s.handOver != nil {
				// The message goes to the subscription with the verdict,
				// not as a second cross-process message after it.
				delivered = s.handOver(PubsubMessage{Topic: topic, From: req.GetFrom(), Data: nonNil(req.GetData())})
			}
			s.send(&wirev1.ValidatorVerdict{Id: req.GetId(), Verdict: verdictToWire(verdict), Delivered: delivered})
		}()
	}
}

func (s *hostValidatorStream) send(a *wirev1.ValidatorVerdict) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	_ = s.stream.Send(a)
}

// judge runs v on one message; a panic in it, or an answer after the
// deadline, is VerdictIgnore (and a panic is not a crash of the host).
func judge(ctx context.Context, topic string, v MessageValidator, req *wirev1.ValidationRequest) (verdict Verdict) {
	if dl := req.GetDeadlineUnixNano(); dl > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, dl))
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			verdict = VerdictIgnore
		}
	}()
	verdict = v(ctx, req.GetFrom(), nonNil(req.GetData()))
	if ctx.Err() != nil {
		return VerdictIgnore // too late: the plugin has stopped waiting
	}
	return verdict
}

func verdictToWire(v Verdict) wirev1.Verdict {
	switch v {
	case VerdictAccept:
		return wirev1.Verdict_VERDICT_ACCEPT
	case VerdictReject:
		return wirev1.Verdict_VERDICT_REJECT
	default:
		return wirev1.Verdict_VERDICT_IGNORE
	}
}

func verdictFromWire(v wirev1.Verdict) Verdict {
	switch v {
	case wirev1.Verdict_VERDICT_ACCEPT:
		return VerdictAccept
	case wirev1.Verdict_VERDICT_REJECT:
		return VerdictReject
	default:
		return VerdictIgnore
	}
}
