package sdk

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// The plugin side of TopicGate, TopicValidator and PeerScorer.

func (n *networkServer) CloseTopic(ctx context.Context, req *wirev1.TopicRequest) (*wirev1.Empty, error) {
	tg, ok := n.impl.(TopicGate)
	if !ok {
		return nil, capUnimplemented("TopicGate")
	}
	if req.GetTopic() == "" {
		return nil, status.Error(codes.InvalidArgument, "close topic: topic is required")
	}
	if err := tg.CloseTopic(ctx, req.GetTopic()); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

func (n *networkServer) AdmitPeer(ctx context.Context, req *wirev1.AdmitPeerRequest) (*wirev1.Empty, error) {
	tg, ok := n.impl.(TopicGate)
	if !ok {
		return nil, capUnimplemented("TopicGate")
	}
	if req.GetTopic() == "" || req.GetPeer() == "" {
		return nil, status.Error(codes.InvalidArgument, "admit peer: topic and peer are required")
	}
	if err := tg.AdmitPeer(ctx, req.GetTopic(), req.GetPeer(), req.GetAdmit()); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

func (n *networkServer) ScorePeer(ctx context.Context, req *wirev1.ScorePeerRequest) (*wirev1.Empty, error) {
	ps, ok := n.impl.(PeerScorer)
	if !ok {
		return nil, capUnimplemented("PeerScorer")
	}
	if req.GetPeer() == "" || math.IsNaN(req.GetDelta()) || math.IsInf(req.GetDelta(), 0) {
		return nil, status.Error(codes.InvalidArgument, "score peer: a peer and a finite delta are required")
	}
	if err := ps.ScorePeer(ctx, req.GetPeer(), req.GetDelta(), req.GetReason()); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

// validatorStream is one host validator stream: the plugin network's
// validator for its topic sends each message over it and waits for the
// verdict.
type validatorStream struct {
	topic  string
	stream grpc.BidiStreamingServer[wirev1.ValidatorVerdict, wirev1.ValidationRequest]
	done   chan struct{} // closed when the stream has ended

	sendMu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]pendingVerdict

	// delivered is set when the host asked for delivery in verdicts (the
	// first message's deliver): an accepted message it marks delivered
	// is not sent on the topic's Subscribe stream.
	delivered *hostDelivered
}

type pendingVerdict struct {
	ch   chan Verdict
	from string
	data []byte
}

// validate is the MessageValidator registered with the plugin's network.
// It answers VerdictIgnore when ctx ends first or the host's stream is
// gone.
func (d *validatorStream) validate(ctx context.Context, from string, data []byte) Verdict {
	ch := make(chan Verdict, 1)
	d.mu.Lock()
	if d.pending == nil { // the stream has ended
		d.mu.Unlock()
		return VerdictIgnore
	}
	d.nextID++
	id := d.nextID
	d.pending[id] = pendingVerdict{ch: ch, from: from, data: data}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if d.pending != nil {
			delete(d.pending, id)
		}
		d.mu.Unlock()
	}()
	msg := &wirev1.ValidationRequest{Id: id, From: from, Data: nonNil(data)}
	if dl, ok := ctx.Deadline(); ok {
		msg.DeadlineUnixNano = dl.UnixNano()
	}
	// Under sendMu and only while the stream is open: gRPC forbids a Send
	// after the RPC handler has returned, and end closes done first.
	d.sendMu.Lock()
	var err error
	select {
	case <-d.done:
		err = errors.New("stream ended")
	default:
		err = d.stream.Send(msg)
	}
	d.sendMu.Unlock()
	if err != nil {
		return VerdictIgnore
	}
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		return VerdictIgnore
	case <-d.done:
		return VerdictIgnore
	}
}

// deliver hands a verdict to the waiting validation; one nobody waits for
// (timed out, unknown id) is dropped.
func (d *validatorStream) deliver(a *wirev1.ValidatorVerdict) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pending[a.GetId()]; ok {
		delete(d.pending, a.GetId())
		v := verdictFromWire(a.GetVerdict())
		if v == VerdictAccept && a.GetDelivered() && d.delivered != nil {
			// Before the answer: the network hands the message to the
			// Subscribe stream only once the validator returns.
			d.delivered.mark(d.topic, deliveredKey(p.from, p.data))
		}
		p.ch <- v // buffered, one answer per id
	}
}

// end fails the waiting validations and stops further sends.
func (d *validatorStream) end() {
	d.mu.Lock()
	d.pending = nil
	d.mu.Unlock()
	d.sendMu.Lock()
	close(d.done)
	d.sendMu.Unlock()
}

func (n *networkServer) ValidateTopic(stream grpc.BidiStreamingServer[wirev1.ValidatorVerdict, wirev1.ValidationRequest]) error {
	tv, ok := n.impl.(TopicValidator)
	if !ok {
		return capUnimplemented("TopicValidator")
	}
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	topic := first.GetTopic()
	if topic == "" {
		return status.Error(codes.InvalidArgument, "validate topic: the first message must name a topic")
	}
	d := &validatorStream{topic: topic, stream: stream, done: make(chan struct{}), pending: map[uint64]pendingVerdict{}}
	if first.GetDeliver() {
		d.delivered = &n.delivered
	}
	defer d.end()
	// n.valMu is held across the network's ValidateTopic so that a
	// replaced stream's cleanup cannot remove its successor's validator.
	n.valMu.Lock()
	if err := tv.ValidateTopic(topic, d.validate); err != nil {
		n.valMu.Unlock()
		return toStatus(err)
	}
	n.validators[topic] = d
	n.valMu.Unlock()
	defer func() {
		n.valMu.Lock()
		defer n.valMu.Unlock()
		if n.validators[topic] != d {
			return // replaced by a newer stream
		}
		delete(n.validators, topic)
		if err := tv.ValidateTopic(topic, nil); err != nil {
			slog.Warn("remove topic validator", "topic", topic, "error", err)
		}
	}()
	d.sendMu.Lock()
	err = stream.Send(&wirev1.ValidationRequest{Registered: true, Deliver: d.delivered != nil})
	d.sendMu.Unlock()
	if err != nil {
		return err
	}
	for {
		a, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || stream.Context().Err() != nil {
				return nil
			}
			return err
		}
		d.deliver(a)
	}
}
