package sdk

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// queryChunkBytes bounds the payload of one QueryResponse message.
const queryChunkBytes = 1 << 20

type storeServer struct {
	wirev1.UnimplementedStoreServer
	impl Store
}

func (s *storeServer) Get(ctx context.Context, req *wirev1.KeyRequest) (*wirev1.ValueResponse, error) {
	v, err := s.impl.Get(ctx, req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.ValueResponse{Value: v}, nil
}

func (s *storeServer) Put(ctx context.Context, req *wirev1.PutRequest) (*wirev1.Empty, error) {
	if err := s.impl.Put(ctx, req.GetKey(), nonNil(req.GetValue())); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

func (s *storeServer) Delete(ctx context.Context, req *wirev1.KeyRequest) (*wirev1.Empty, error) {
	if err := s.impl.Delete(ctx, req.GetKey()); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

func (s *storeServer) Has(ctx context.Context, req *wirev1.KeyRequest) (*wirev1.HasResponse, error) {
	ok, err := s.impl.Has(ctx, req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.HasResponse{Found: ok}, nil
}

func (s *storeServer) Batch(ctx context.Context, req *wirev1.BatchRequest) (*wirev1.Empty, error) {
	ops := make([]Op, len(req.GetOps()))
	for i, o := range req.GetOps() {
		ops[i] = Op{Key: o.GetKey(), Value: nonNil(o.GetValue()), Delete: o.GetDelete()}
		if o.GetDelete() {
			ops[i].Value = nil
		}
	}
	if err := s.impl.Batch(ctx, ops, req.GetSync()); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

func (s *storeServer) Query(req *wirev1.QueryRequest, stream grpc.ServerStreamingServer[wirev1.QueryResponse]) error {
	if req.GetLimit() < 0 {
		return toStatus(fmt.Errorf("query limit %d: %w: must not be negative", req.GetLimit(), ErrInvalidArgument))
	}
	q := Query{Prefix: req.GetPrefix(), KeysOnly: req.GetKeysOnly(), Limit: int(req.GetLimit())}
	resp := &wirev1.QueryResponse{}
	size := 0
	for kv, err := range s.impl.Query(stream.Context(), q) {
		if err != nil {
			return toStatus(err)
		}
		item := &wirev1.KeyValue{Key: kv.Key}
		if !q.KeysOnly {
			item.Value = nonNil(kv.Value)
		}
		resp.Items = append(resp.Items, item)
		size += len(kv.Key) + len(item.Value) + 8
		if size >= queryChunkBytes || len(resp.Items) >= 4096 {
			if err := stream.Send(resp); err != nil {
				return err
			}
			resp = &wirev1.QueryResponse{}
			size = 0
		}
	}
	if len(resp.Items) > 0 {
		return stream.Send(resp)
	}
	return nil
}

func (s *storeServer) Sync(ctx context.Context, _ *wirev1.Empty) (*wirev1.Empty, error) {
	if err := s.impl.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

// nonNil keeps "empty value" distinct from "no value" across the boundary:
// protobuf decodes an empty bytes field as nil.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

type discoveryServer struct {
	wirev1.UnimplementedDiscoveryServer
	impl Discovery
}

func (d *discoveryServer) Advertise(req *wirev1.AdvertiseRequest, stream grpc.ServerStreamingServer[wirev1.AdvertiseEvent]) error {
	ctx := stream.Context()
	if err := d.impl.Advertise(ctx, req.GetNamespace(), peerInfoFromWire(req.GetSelf())); err != nil {
		return toStatus(err)
	}
	if err := stream.Send(&wirev1.AdvertiseEvent{Started: true}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (d *discoveryServer) FindPeers(req *wirev1.FindPeersRequest, stream grpc.ServerStreamingServer[wirev1.FindPeersEvent]) error {
	ctx := stream.Context()
	ch, err := d.impl.FindPeers(ctx, req.GetNamespace())
	if err != nil {
		return toStatus(err)
	}
	return streamPeers(ctx, stream, ch)
}
