package sdk

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc/stats"
)

// A transport plugin may serve several clients: the host, and network
// plugin processes it is attached to (TransportAttacher). A listener
// belongs to the client connection that made it, and is closed when that
// connection ends: a network plugin that crashes leaves no listener bound
// in the transport plugin, so its restarted instance can listen again.

type connIDKey struct{}

var nextClientConn atomic.Uint64

// clientConnID is the id of the client connection an RPC arrived on (0
// when unknown).
func clientConnID(ctx context.Context) uint64 {
	id, _ := ctx.Value(connIDKey{}).(uint64)
	return id
}

// connTracker is the gRPC stats handler that tags each client connection
// with an id and tells the transport server when one ends.
type connTracker struct{ s *pluginServer }

var _ stats.Handler = connTracker{}

func (connTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connIDKey{}, nextClientConn.Add(1))
}

func (t connTracker) HandleConn(ctx context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnEnd); ok && t.s.transport != nil {
		t.s.transport.clientGone(clientConnID(ctx))
	}
}

func (connTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (connTracker) HandleRPC(context.Context, stats.RPCStats)                       {}

// clientGone closes the listeners made over client connection id.
func (s *transportServer) clientGone(id uint64) {
	if id == 0 {
		return
	}
	s.mu.Lock()
	var ls []Listener
	for lid, owner := range s.owners {
		if owner == id {
			if l, ok := s.listeners[lid]; ok {
				ls = append(ls, l)
			}
			delete(s.listeners, lid)
			delete(s.owners, lid)
		}
	}
	s.mu.Unlock()
	for _, l := range ls {
		_ = l.Close()
	}
	if len(ls) > 0 {
		s.logger.Info("client gone; closed its listeners", "listeners", len(ls))
	}
}
