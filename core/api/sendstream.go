package api

import (
	"context"
	"errors"
	"io"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/messenger"
)

// inFlight is one request of a SendStream: begun (p) or refused (err).
type inFlight struct {
	seq   uint64
	group string // the group's id (hex), once resolved
	p     *messenger.PendingSend
	err   error
	bytes int64
}

// SendStream begins each request's send in arrival order (a reader
// goroutine), so that their order in the log is the stream's, and acks
// them in the same order as each becomes durable (this goroutine): sends
// waited for together share one write. While window sends or
// MaxSendBytesInFlight bytes are unacknowledged the reader stops reading,
// and gRPC's flow control holds the client back.
func (s messagesServer) SendStream(stream grpc.BidiStreamingServer[apiv1.SendRequest, apiv1.SendAck]) error {
	ctx := stream.Context()
	window := int64(s.sendWindow)
	count := semaphore.NewWeighted(window)
	budget := semaphore.NewWeighted(apiv1.MaxSendBytesInFlight)
	pending := make(chan inFlight, window)
	var readErr error // set before pending is closed
	go func() {
		defer close(pending)
		for {
			if err := count.Acquire(ctx, 1); err != nil {
				readErr = err
				return
			}
			r, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr = err
				}
				return
			}
			it := inFlight{seq: r.GetSeq(), bytes: min(int64(len(r.GetBody())), apiv1.MaxSendBytesInFlight)}
			if err := budget.Acquire(ctx, it.bytes); err != nil {
				readErr = err
				return
			}
			s.begin(ctx, r, &it)
			pending <- it
		}
	}()
	for {
		var it inFlight
		var ok bool
		select {
		case it, ok = <-pending:
		case <-ctx.Done():
			go drain(pending)
			return toStatus(ctx.Err())
		}
		if !ok {
			if readErr != nil {
				return toStatus(readErr)
			}
			return nil
		}
		ack := &apiv1.SendAck{Seq: it.seq, Group: it.group}
		err := it.err
		if err == nil {
			var msg *group.Message
			if msg, err = it.p.Wait(ctx); err == nil {
				ack.Cid, ack.Time, ack.SentAt = msg.CID.String(), msg.Time, msg.SentAt.UnixNano()
			}
		}
		if err != nil {
			st, _ := status.FromError(toStatus(err))
			ack.Code, ack.Error = uint32(st.Code()), st.Message()
		}
		count.Release(1)
		budget.Release(it.bytes)
		if err := stream.Send(ack); err != nil {
			go drain(pending)
			return err
		}
	}
}

// begin resolves the request's group, checks it as Send does and begins
// the send, recording the outcome in it.
func (s messagesServer) begin(ctx context.Context, r *apiv1.SendRequest, it *inFlight) {
	gi, err := s.m.Resolve(r.GetGroup())
	if err != nil {
		it.err = err
		return
	}
	it.group = gi.ID.String()
	if len(r.GetBody()) > apiv1.MaxMessageBytes {
		it.err = status.Errorf(codes.InvalidArgument, "message to %s is larger than %d bytes (960 KiB), the most one message may hold", groupName(gi), apiv1.MaxMessageBytes)
		return
	}
	// Begun sends are written even if the stream ends: not abandoned with
	// its context.
	it.p, it.err = s.m.BeginSend(context.WithoutCancel(ctx), it.group, r.GetBody())
}

// drain waits for the sends of a stream that ended before they were
// acknowledged: each begun send is waited for (Wait delivers it locally,
// or undoes it), acknowledged or not.
func drain(pending <-chan inFlight) {
	for it := range pending {
		if it.p != nil {
			it.p.Wait(context.Background()) //nolint:errcheck // nobody to tell
		}
	}
}
