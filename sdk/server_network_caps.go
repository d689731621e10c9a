package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// The plugin side of the optional network capabilities (network_caps.go).

func newNetworkServer(n Network) *networkServer {
	return &networkServer{impl: n, direct: map[string]*directStream{}, validators: map[string]*validatorStream{}}
}

func capUnimplemented(name string) error {
	return status.Errorf(codes.Unimplemented, "network does not implement %s: %v", name, ErrCapabilityNotServed)
}

func (n *networkServer) PeerEvents(_ *wirev1.Empty, stream grpc.ServerStreamingServer[wirev1.PeerEventMessage]) error {
	pn, ok := n.impl.(PeerNotifier)
	if !ok {
		return capUnimplemented("PeerNotifier")
	}
	ctx := stream.Context()
	ch, err := pn.PeerEvents(ctx)
	if err != nil {
		return toStatus(err)
	}
	if err := stream.Send(&wirev1.PeerEventMessage{Started: true}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			if err := stream.Send(&wirev1.PeerEventMessage{Peer: ev.Peer, Connected: ev.Connected}); err != nil {
				return err
			}
		}
	}
}

func (n *networkServer) TopicPeerEvents(req *wirev1.TopicRequest, stream grpc.ServerStreamingServer[wirev1.TopicPeerEventMessage]) error {
	tn, ok := n.impl.(TopicPeerNotifier)
	if !ok {
		return capUnimplemented("TopicPeerNotifier")
	}
	if req.GetTopic() == "" {
		return status.Error(codes.InvalidArgument, "topic peer events: topic is required")
	}
	ctx := stream.Context()
	ch, err := tn.TopicPeerEvents(ctx, req.GetTopic())
	if err != nil {
		return toStatus(err)
	}
	if err := stream.Send(&wirev1.TopicPeerEventMessage{Started: true}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			if err := stream.Send(&wirev1.TopicPeerEventMessage{Peer: ev.Peer, Joined: ev.Joined}); err != nil {
				return err
			}
		}
	}
}

func (n *networkServer) Request(ctx context.Context, req *wirev1.DirectRequest) (*wirev1.DirectResponse, error) {
	dm, ok := n.impl.(DirectMessenger)
	if !ok {
		return nil, capUnimplemented("DirectMessenger")
	}
	if req.GetPeer() == "" || req.GetProtocol() == "" {
		return nil, status.Error(codes.InvalidArgument, "request: peer and protocol are required")
	}
	resp, err := dm.Request(ctx, req.GetPeer(), req.GetProtocol(), nonNil(req.GetData()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.DirectResponse{Data: resp}, nil
}

func (n *networkServer) BlockPeer(ctx context.Context, req *wirev1.BlockPeerRequest) (*wirev1.Empty, error) {
	pb, ok := n.impl.(PeerBlocker)
	if !ok {
		return nil, capUnimplemented("PeerBlocker")
	}
	if req.GetPeer() == "" {
		return nil, status.Error(codes.InvalidArgument, "block peer: peer is required")
	}
	if req.GetDurationNanos() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "block peer: negative duration %d", req.GetDurationNanos())
	}
	if err := pb.BlockPeer(ctx, req.GetPeer(), req.GetReason(), time.Duration(req.GetDurationNanos())); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

// directStream is one host handler stream: the plugin network's handler
// for its protocol forwards each request over it and waits for the answer.
type directStream struct {
	protocol string
	stream   grpc.BidiStreamingServer[wirev1.HandlerAnswer, wirev1.IncomingRequest]
	done     chan struct{} // closed when the stream has ended

	sendMu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *wirev1.HandlerAnswer
}

// handle is the RequestHandler registered with the plugin's network.
func (d *directStream) handle(ctx context.Context, from string, request []byte) ([]byte, error) {
	ch := make(chan *wirev1.HandlerAnswer, 1)
	d.mu.Lock()
	if d.pending == nil { // the stream has ended
		d.mu.Unlock()
		return nil, fmt.Errorf("direct request %s: host handler gone: %w", d.protocol, ErrPluginUnavailable)
	}
	d.nextID++
	id := d.nextID
	d.pending[id] = ch
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if d.pending != nil {
			delete(d.pending, id)
		}
		d.mu.Unlock()
	}()
	msg := &wirev1.IncomingRequest{Id: id, From: from, Data: nonNil(request)}
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
		return nil, fmt.Errorf("direct request %s: forward to host: %w", d.protocol, err)
	}
	select {
	case a := <-ch:
		if a.GetError() != "" {
			return nil, fromStatus("direct request "+d.protocol+": host handler", status.Error(codes.Code(a.GetErrorCode()), a.GetError()))
		}
		return nonNil(a.GetData()), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("direct request %s: %w", d.protocol, ctx.Err())
	case <-d.done:
		return nil, fmt.Errorf("direct request %s: host handler gone: %w", d.protocol, ErrPluginUnavailable)
	}
}

// deliver hands an answer to the waiting handler; an answer nobody waits
// for (timed out, unknown id) is dropped.
func (d *directStream) deliver(a *wirev1.HandlerAnswer) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, ok := d.pending[a.GetId()]
	if ok {
		delete(d.pending, a.GetId())
		ch <- a // buffered, one answer per id
	}
	return ok
}

// end fails the waiting handlers and stops further sends.
func (d *directStream) end() {
	d.mu.Lock()
	d.pending = nil
	d.mu.Unlock()
	d.sendMu.Lock()
	close(d.done)
	d.sendMu.Unlock()
}

func (n *networkServer) HandleRequests(stream grpc.BidiStreamingServer[wirev1.HandlerAnswer, wirev1.IncomingRequest]) error {
	dm, ok := n.impl.(DirectMessenger)
	if !ok {
		return capUnimplemented("DirectMessenger")
	}
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	proto := first.GetProtocol()
	if proto == "" {
		return status.Error(codes.InvalidArgument, "handle requests: the first message must name a protocol")
	}
	d := &directStream{protocol: proto, stream: stream, done: make(chan struct{}), pending: map[uint64]chan *wirev1.HandlerAnswer{}}
	defer d.end()
	// n.directMu is held across the network's HandleRequests so that a
	// replaced stream's cleanup cannot remove its successor's handler.
	n.directMu.Lock()
	if err := dm.HandleRequests(proto, d.handle); err != nil {
		n.directMu.Unlock()
		return toStatus(fmt.Errorf("handle requests %s: %w", proto, err))
	}
	n.direct[proto] = d
	n.directMu.Unlock()
	defer func() {
		n.directMu.Lock()
		defer n.directMu.Unlock()
		if n.direct[proto] != d {
			return // replaced by a newer stream
		}
		delete(n.direct, proto)
		if err := dm.HandleRequests(proto, nil); err != nil {
			slog.Warn("remove direct request handler", "protocol", proto, "error", err)
		}
	}()
	d.sendMu.Lock()
	err = stream.Send(&wirev1.IncomingRequest{Registered: true})
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
