package sdk

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

type networkServer struct {
	wirev1.UnimplementedNetworkServer
	impl Network

	directMu sync.Mutex
	direct   map[string]*directStream // the current host stream per protocol

	valMu      sync.Mutex
	validators map[string]*validatorStream // the current host stream per topic
	delivered  hostDelivered               // messages the host took from verdicts

	attached attachedEndpoints // transport_attach.go
}

func (n *networkServer) Info(context.Context, *wirev1.Empty) (*wirev1.NetworkInfo, error) {
	return &wirev1.NetworkInfo{PeerId: n.impl.PeerID(), Addrs: n.impl.Addrs()}, nil
}

func (n *networkServer) PutBlocks(ctx context.Context, req *wirev1.PutBlocksRequest) (*wirev1.Empty, error) {
	blocks := make([]Block, len(req.GetBlocks()))
	for i, b := range req.GetBlocks() {
		blocks[i] = Block{CID: b.GetCid(), Data: nonNil(b.GetData())}
	}
	if err := n.impl.PutBlocks(ctx, blocks); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

func (n *networkServer) GetBlocks(req *wirev1.GetBlocksRequest, stream grpc.ServerStreamingServer[wirev1.GetBlocksEvent]) error {
	for b, err := range n.impl.GetBlocks(stream.Context(), req.GetCids()) {
		ev := &wirev1.GetBlocksEvent{}
		if err != nil {
			st, _ := status.FromError(toStatus(err))
			ev.ErrorCid = b.CID
			ev.Error = st.Message()
			ev.ErrorCode = int32(st.Code())
		} else {
			ev.Block = &wirev1.Block{Cid: b.CID, Data: nonNil(b.Data)}
		}
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	return nil
}

func (n *networkServer) HasBlock(ctx context.Context, req *wirev1.CidRequest) (*wirev1.HasResponse, error) {
	ok, err := n.impl.HasBlock(ctx, req.GetCid())
	if err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.HasResponse{Found: ok}, nil
}

func (n *networkServer) Publish(ctx context.Context, req *wirev1.PublishRequest) (*wirev1.Empty, error) {
	if err := n.impl.Publish(ctx, req.GetTopic(), nonNil(req.GetData())); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

func (n *networkServer) Subscribe(req *wirev1.SubscribeRequest, stream grpc.ServerStreamingServer[wirev1.SubscribeEvent]) error {
	ctx := stream.Context()
	ch, err := n.impl.Subscribe(ctx, req.GetTopic())
	if err != nil {
		return toStatus(err)
	}
	defer n.delivered.subscribed(req.GetTopic())()
	if err := stream.Send(&wirev1.SubscribeEvent{Started: true}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			if n.delivered.take(req.GetTopic(), m.From, m.Data) {
				continue // the host took it with its verdict
			}
			if err := stream.Send(&wirev1.SubscribeEvent{Message: &wirev1.PubsubMessage{Topic: m.Topic, From: m.From, Data: m.Data}}); err != nil {
				return err
			}
		}
	}
}

func (n *networkServer) Connect(ctx context.Context, req *wirev1.PeerInfo) (*wirev1.Empty, error) {
	if err := n.impl.Connect(ctx, peerInfoFromWire(req)); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

func (n *networkServer) Peers(ctx context.Context, _ *wirev1.Empty) (*wirev1.PeersResponse, error) {
	ps, err := n.impl.Peers(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &wirev1.PeersResponse{Peers: make([]*wirev1.PeerInfo, len(ps))}
	for i, p := range ps {
		resp.Peers[i] = peerInfoToWire(p)
	}
	return resp, nil
}

func (n *networkServer) Provide(ctx context.Context, req *wirev1.CidRequest) (*wirev1.Empty, error) {
	if err := n.impl.Provide(ctx, req.GetCid()); err != nil {
		return nil, toStatus(err)
	}
	return &wirev1.Empty{}, nil
}

func (n *networkServer) FindProviders(req *wirev1.CidRequest, stream grpc.ServerStreamingServer[wirev1.FindPeersEvent]) error {
	ctx := stream.Context()
	ch, err := n.impl.FindProviders(ctx, req.GetCid())
	if err != nil {
		return toStatus(err)
	}
	return streamPeers(ctx, stream, ch)
}

// streamPeers sends a Started event, then every peer from ch, until ch
// closes or ctx ends (FindProviders, FindPeers).
func streamPeers(ctx context.Context, stream grpc.ServerStreamingServer[wirev1.FindPeersEvent], ch <-chan PeerInfo) error {
	if err := stream.Send(&wirev1.FindPeersEvent{Started: true}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case p, ok := <-ch:
			if !ok {
				return nil
			}
			if err := stream.Send(&wirev1.FindPeersEvent{Peer: peerInfoToWire(p)}); err != nil {
				return err
			}
		}
	}
}
