package api

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stoppingStream is a server stream whose context ends when the server
// starts stopping.
type stoppingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s stoppingStream) Context() context.Context { return s.ctx }

// endStreamsOnStop ends every open stream (a `messages --follow`) as soon
// as Stop is called, with Unavailable "the node is stopping": a graceful
// stop would otherwise wait for them until the shutdown deadline.
func (s *Server) endStreamsOnStop(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := handler(srv, stoppingStream{ServerStream: ss, ctx: ctx})
	select {
	case <-s.stopping:
		return status.Error(codes.Unavailable, "the node is stopping")
	default:
		return err
	}
}
