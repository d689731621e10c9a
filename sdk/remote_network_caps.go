package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// The host side of the optional network capabilities. A remote network
// always has the methods of PeerNotifier, DirectMessenger and PeerBlocker;
// each fails with ErrCapabilityNotServed when the plugin did not announce
// the capability in Describe.

var (
	_ PeerNotifier      = (*remoteNetwork)(nil)
	_ DirectMessenger   = (*remoteNetwork)(nil)
	_ PeerBlocker       = (*remoteNetwork)(nil)
	_ TopicPeerNotifier = (*remoteNetwork)(nil)
)

// registerTimeout bounds the plugin's acknowledgement of a handler stream.
const registerTimeout = 10 * time.Second

// networkCaps are the optional capabilities a plugin announced.
type networkCaps struct {
	peerEvents, direct, blockPeer bool
	transports                    bool // TransportAttacher (transport_attach.go)
	// TopicGate, TopicValidator, PeerScorer (remote_topics.go)
	topicGate, topicValidator, peerScorer bool
	topicPeers                            bool // TopicPeerNotifier
}

// capError converts an error of a capability RPC: UNIMPLEMENTED means the
// plugin lacks the capability after all.
func capError(op string, err error) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unimplemented {
		return fmt.Errorf("%s: %w", op, ErrCapabilityNotServed)
	}
	return fromStatus(op, err)
}

// PeerEvents implements PeerNotifier over the wire. The channel closes when
// ctx ends or the plugin goes away.
func (n *remoteNetwork) PeerEvents(ctx context.Context) (<-chan PeerEvent, error) {
	if !n.caps.peerEvents {
		return nil, fmt.Errorf("network peer events: %w", ErrCapabilityNotServed)
	}
	sctx, cancel := context.WithCancel(ctx)
	stream, err := n.c.PeerEvents(sctx, &wirev1.Empty{})
	if err == nil {
		_, err = stream.Recv() // the started event
	}
	if err != nil {
		cancel()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("network peer events: plugin ended the stream before it started")
		}
		return nil, capError("network peer events", err)
	}
	out := make(chan PeerEvent)
	go func() {
		defer cancel()
		defer close(out)
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			if ev.GetPeer() == "" {
				continue
			}
			select {
			case out <- PeerEvent{Peer: ev.GetPeer(), Connected: ev.GetConnected()}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// TopicPeerEvents implements TopicPeerNotifier over the wire. The channel
// closes when ctx ends or the plugin goes away.
func (n *remoteNetwork) TopicPeerEvents(ctx context.Context, topic string) (<-chan TopicPeerEvent, error) {
	op := "network topic peer events " + topic
	if !n.caps.topicPeers {
		return nil, fmt.Errorf("%s: %w", op, ErrCapabilityNotServed)
	}
	if topic == "" {
		return nil, fmt.Errorf("%s: empty topic: %w", op, ErrInvalidArgument)
	}
	sctx, cancel := context.WithCancel(ctx)
	stream, err := n.c.TopicPeerEvents(sctx, &wirev1.TopicRequest{Topic: topic})
	if err == nil {
		_, err = stream.Recv() // the started event
	}
	if err != nil {
		cancel()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: plugin ended the stream before it started", op)
		}
		return nil, capError(op, err)
	}
	out := make(chan TopicPeerEvent)
	go func() {
		defer cancel()
		defer close(out)
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			if ev.GetPeer() == "" {
				continue
			}
			select {
			case out <- TopicPeerEvent{Peer: ev.GetPeer(), Joined: ev.GetJoined()}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Request implements DirectMessenger: the plugin's network sends request to
// peer and the answer comes back.
func (n *remoteNetwork) Request(ctx context.Context, peer, protocol string, request []byte) ([]byte, error) {
	op := fmt.Sprintf("network request %s to %s", protocol, peer)
	if !n.caps.direct {
		return nil, fmt.Errorf("%s: %w", op, ErrCapabilityNotServed)
	}
	if peer == "" || protocol == "" {
		return nil, fmt.Errorf("%s: peer and protocol are required: %w", op, ErrInvalidArgument)
	}
	resp, err := n.c.Request(ctx, &wirev1.DirectRequest{Peer: peer, Protocol: protocol, Data: request})
	if err != nil {
		return nil, capError(op, err)
	}
	return nonNil(resp.GetData()), nil
}

// BlockPeer implements PeerBlocker over the wire.
func (n *remoteNetwork) BlockPeer(ctx context.Context, peer, reason string, d time.Duration) error {
	op := "network block peer " + peer
	if !n.caps.blockPeer {
		return fmt.Errorf("%s: %w", op, ErrCapabilityNotServed)
	}
	if peer == "" || d < 0 {
		return fmt.Errorf("%s: a peer and a non-negative duration are required: %w", op, ErrInvalidArgument)
	}
	_, err := n.c.BlockPeer(ctx, &wirev1.BlockPeerRequest{Peer: peer, Reason: reason, DurationNanos: int64(d)})
	return capError(op, err)
}

// HandleRequests implements DirectMessenger: it opens a handler stream for
// protocol on which the plugin forwards the requests its network receives,
// and returns once the plugin has registered the handler. A nil h ends the
// stream, which removes the plugin's handler. The registration lasts until
// it is replaced or removed, or the plugin process ends (a supervising host
// registers again on the new process).
func (n *remoteNetwork) HandleRequests(protocol string, h RequestHandler) error {
	op := "network handle requests " + protocol
	if !n.caps.direct {
		return fmt.Errorf("%s: %w", op, ErrCapabilityNotServed)
	}
	if protocol == "" {
		return fmt.Errorf("%s: empty protocol: %w", op, ErrInvalidArgument)
	}
	return n.direct.set(n.c, protocol, h)
}

// directRegistry holds a RemotePlugin's open handler streams, one per
// protocol, shared by every Network value of the plugin.
type directRegistry struct {
	root context.Context // ends when the plugin process exits

	mu      sync.Mutex // serialises set
	streams map[string]*handlerStream
}

func newDirectRegistry(root context.Context) *directRegistry {
	return &directRegistry{root: root, streams: map[string]*handlerStream{}}
}

// handlerStream is one open HandleRequests stream on the host side.
type handlerStream struct {
	cancel context.CancelFunc
	stream grpc.BidiStreamingClient[wirev1.HandlerAnswer, wirev1.IncomingRequest]
	done   chan struct{} // closed when the receive loop has returned
	sendMu sync.Mutex
}

// closeAndWait ends the stream politely (the plugin removes its handler)
// and waits a bounded time before cancelling it.
func (s *handlerStream) closeAndWait() {
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

func (r *directRegistry) set(c wirev1.NetworkClient, protocol string, h RequestHandler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.streams[protocol]
	if old != nil {
		select {
		case <-old.done: // ended with its plugin process
			old.cancel()
			delete(r.streams, protocol)
			old = nil
		default:
		}
	}
	if h == nil {
		if old != nil {
			delete(r.streams, protocol)
			old.closeAndWait()
		}
		return nil
	}
	s, err := openHandlerStream(r.root, c, protocol, h)
	if err != nil {
		return err
	}
	r.streams[protocol] = s
	if old != nil {
		// The plugin has already swapped in the new stream's handler, so
		// ending the old one does not remove it.
		old.cancel()
	}
	return nil
}

func openHandlerStream(root context.Context, c wirev1.NetworkClient, protocol string, h RequestHandler) (*handlerStream, error) {
	op := "network handle requests " + protocol
	ctx, cancel := context.WithCancel(root)
	stream, err := c.HandleRequests(ctx)
	if err != nil {
		cancel()
		return nil, capError(op, err)
	}
	s := &handlerStream{cancel: cancel, stream: stream, done: make(chan struct{})}
	if err := stream.Send(&wirev1.HandlerAnswer{Protocol: protocol}); err != nil {
		cancel()
		return nil, capError(op, recvErr(stream, err))
	}
	timer := time.AfterFunc(registerTimeout, cancel)
	ack, err := stream.Recv()
	stopped := timer.Stop()
	if err != nil || !ack.GetRegistered() {
		cancel()
		switch {
		case err == nil:
			return nil, fmt.Errorf("%s: plugin did not acknowledge the handler", op)
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("%s: plugin ended the stream before registering", op)
		case !stopped:
			return nil, fmt.Errorf("%s: plugin did not register the handler within %s: %w", op, registerTimeout, ErrPluginUnavailable)
		}
		return nil, capError(op, err)
	}
	go s.serve(ctx, protocol, h)
	return s, nil
}

// recvErr returns the stream's real status after a failed Send (gRPC
// reports io.EOF from Send and the status from Recv).
func recvErr(stream grpc.BidiStreamingClient[wirev1.HandlerAnswer, wirev1.IncomingRequest], err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.Recv(); rerr != nil {
			return rerr
		}
	}
	return err
}

// serve runs h for each request the plugin forwards, concurrently, and
// sends back the answers.
func (s *handlerStream) serve(ctx context.Context, protocol string, h RequestHandler) {
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := s.answer(ctx, protocol, h, req)
			s.sendMu.Lock()
			_ = s.stream.Send(a)
			s.sendMu.Unlock()
		}()
	}
}

// answer runs the handler for one request; a panic in it becomes an error
// answer, not a crash of the host.
func (s *handlerStream) answer(ctx context.Context, protocol string, h RequestHandler, req *wirev1.IncomingRequest) (a *wirev1.HandlerAnswer) {
	if dl := req.GetDeadlineUnixNano(); dl > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, dl))
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			a = &wirev1.HandlerAnswer{Id: req.GetId(), Error: fmt.Sprintf("handler for %s panicked: %v", protocol, r), ErrorCode: int32(codes.Internal)}
		}
	}()
	resp, err := h(ctx, req.GetFrom(), nonNil(req.GetData()))
	if err != nil {
		st, _ := status.FromError(toStatus(err))
		msg := st.Message()
		if msg == "" {
			msg = "handler refused"
		}
		return &wirev1.HandlerAnswer{Id: req.GetId(), Error: msg, ErrorCode: int32(st.Code())}
	}
	return &wirev1.HandlerAnswer{Id: req.GetId(), Data: nonNil(resp)}
}
