package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/skein-p2p/skein/api/v1"
)

// ErrSenderClosed: Send was called after Close, or the sender's stream
// ended before the message was acknowledged.
var ErrSenderClosed = errors.New("sender closed")

// Sender sends messages over one Messages.SendStream: each Send returns at
// once with a PendingSend, and the node writes the messages in the order
// of the Send calls, sharing writes among those in flight. It keeps at most
// apiv1.MaxSendsInFlight messages unacknowledged (Send then blocks). A
// Sender is safe for concurrent use; concurrent Sends are ordered as they
// take their turn.
//
//	s, err := c.NewSender(ctx)
//	p, err := s.Send(ctx, "friends", []byte("hi"))
//	ack, err := p.Wait(ctx) // durable on the node
//	err = s.Close()         // after the last ack
type Sender struct {
	stream apiv1.Messages_SendStreamClient
	cancel context.CancelFunc

	mu     sync.Mutex // orders Send; guards seq, closed
	seq    uint64
	closed bool
	// inFlight holds the unacknowledged sends in order; its capacity is
	// the window.
	inFlight chan *PendingSend
	done     chan struct{} // closed when the stream has ended
	err      error         // why it ended (nil: closed after every ack); set before done
}

// PendingSend is one message given to Sender.Send.
type PendingSend struct {
	seq  uint64
	done chan struct{}
	ack  *apiv1.SendAck
	err  error
}

// Seq is the message's number in its Sender, from 1.
func (p *PendingSend) Seq() uint64 { return p.seq }

// Done is closed once the message is acknowledged or has failed.
func (p *PendingSend) Done() <-chan struct{} { return p.done }

// Wait returns the node's acknowledgement once the message is durable.
// The error is the message's own (a gRPC status: NotFound for an unknown
// group, InvalidArgument for a body over apiv1.MaxMessageBytes, ...) or
// the stream's, when it ended first; ctx only bounds the wait.
func (p *PendingSend) Wait(ctx context.Context) (*apiv1.SendAck, error) {
	select {
	case <-p.done:
		return p.ack, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// NewSender opens a SendStream. ctx bounds the stream's whole life:
// cancelling it abandons the messages not yet acknowledged (those the
// node has begun are still written).
func (c *Client) NewSender(ctx context.Context) (*Sender, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.Messages.SendStream(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open send stream: %w", err)
	}
	s := &Sender{stream: stream, cancel: cancel,
		inFlight: make(chan *PendingSend, apiv1.MaxSendsInFlight), done: make(chan struct{})}
	go s.receive()
	return s, nil
}

// receive matches acks to sends in order until the stream ends.
func (s *Sender) receive() {
	var err error
	for {
		var ack *apiv1.SendAck
		if ack, err = s.stream.Recv(); err != nil {
			break
		}
		var p *PendingSend
		select {
		case p = <-s.inFlight:
		default:
		}
		if p == nil || p.seq != ack.GetSeq() {
			err = fmt.Errorf("send stream: ack %d out of order", ack.GetSeq())
			break
		}
		p.ack = ack
		if ack.GetCode() != uint32(codes.OK) {
			p.ack, p.err = nil, status.Error(codes.Code(ack.GetCode()), ack.GetError())
		}
		close(p.done)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	s.err = err
	close(s.done)
	s.cancel()
	// Fail whatever was not acknowledged; Send adds nothing more once
	// done is closed.
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for {
		select {
		case p := <-s.inFlight:
			p.err = s.endErr()
			close(p.done)
		default:
			return
		}
	}
}

// endErr says why the stream ended, for a message it did not acknowledge.
func (s *Sender) endErr() error {
	if s.err != nil {
		return fmt.Errorf("%w: %w", ErrSenderClosed, s.err)
	}
	return ErrSenderClosed
}

// Send queues body for group (a group id, unique id prefix or local name)
// and returns at once unless apiv1.MaxSendsInFlight messages are
// unacknowledged; it then waits for room, as long as ctx allows. The
// returned error is the stream's (the Sender is closed or broken); an error
// of the message itself comes from PendingSend.Wait.
func (s *Sender) Send(ctx context.Context, group string, body []byte) (*PendingSend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSenderClosed
	}
	p := &PendingSend{seq: s.seq + 1, done: make(chan struct{})}
	select {
	case s.inFlight <- p:
	case <-s.done:
		return nil, s.endErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.seq++
	if err := s.stream.Send(&apiv1.SendRequest{Group: group, Body: body, Seq: p.seq}); err != nil {
		// The stream is broken: receive sees why, and fails p.
		<-s.done
		return nil, s.endErr()
	}
	return p, nil
}

// Close says no more messages will come, waits (at most until ctx ends)
// for the node to acknowledge those in flight and returns the stream's
// error if it broke. Messages whose acks did not arrive fail with
// ErrSenderClosed.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	s.mu.Unlock()
	if first {
		s.stream.CloseSend() //nolint:errcheck // Recv reports the stream's end
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel()
		<-s.done
	}
	return s.err
}
