package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// remoteStore is a Store in a plugin process.
type remoteStore struct {
	c wirev1.StoreClient
}

var _ Store = (*remoteStore)(nil)

func (s *remoteStore) Get(ctx context.Context, key []byte) ([]byte, error) {
	resp, err := s.c.Get(ctx, &wirev1.KeyRequest{Key: key})
	if err != nil {
		return nil, fromStatus("store get", err)
	}
	return nonNil(resp.GetValue()), nil
}

func (s *remoteStore) Put(ctx context.Context, key, value []byte) error {
	_, err := s.c.Put(ctx, &wirev1.PutRequest{Key: key, Value: value})
	return fromStatus("store put", err)
}

func (s *remoteStore) Delete(ctx context.Context, key []byte) error {
	_, err := s.c.Delete(ctx, &wirev1.KeyRequest{Key: key})
	return fromStatus("store delete", err)
}

func (s *remoteStore) Has(ctx context.Context, key []byte) (bool, error) {
	resp, err := s.c.Has(ctx, &wirev1.KeyRequest{Key: key})
	if err != nil {
		return false, fromStatus("store has", err)
	}
	return resp.GetFound(), nil
}

func (s *remoteStore) Batch(ctx context.Context, ops []Op, sync bool) error {
	// One allocation for all the ops, not one each: a group commit's batch
	// holds many.
	req := &wirev1.BatchRequest{Ops: make([]*wirev1.Op, len(ops)), Sync: sync}
	slab := make([]wirev1.Op, len(ops))
	for i, o := range ops {
		w := &slab[i]
		w.Key, w.Value, w.Delete = o.Key, o.Value, o.Delete
		req.Ops[i] = w
	}
	_, err := s.c.Batch(ctx, req)
	return fromStatus("store batch", err)
}

func (s *remoteStore) Query(ctx context.Context, q Query) iter.Seq2[KeyValue, error] {
	return func(yield func(KeyValue, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := s.c.Query(ctx, &wirev1.QueryRequest{Prefix: q.Prefix, KeysOnly: q.KeysOnly, Limit: int64(q.Limit)})
		if err != nil {
			yield(KeyValue{}, fromStatus("store query", err))
			return
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return
				}
				yield(KeyValue{}, fromStatus("store query", err))
				return
			}
			for _, it := range resp.GetItems() {
				kv := KeyValue{Key: nonNil(it.GetKey())}
				if !q.KeysOnly {
					kv.Value = nonNil(it.GetValue())
				}
				if !yield(kv, nil) {
					return
				}
			}
		}
	}
}

func (s *remoteStore) Sync(ctx context.Context) error {
	_, err := s.c.Sync(ctx, &wirev1.Empty{})
	return fromStatus("store sync", err)
}

// remoteDiscovery is a Discovery in a plugin process.
type remoteDiscovery struct {
	c wirev1.DiscoveryClient
}

var _ Discovery = (*remoteDiscovery)(nil)

// Advertise returns once the plugin has started announcing; announcing goes
// on until ctx ends.
func (d *remoteDiscovery) Advertise(ctx context.Context, namespace string, self PeerInfo) error {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := d.c.Advertise(sctx, &wirev1.AdvertiseRequest{Namespace: namespace, Self: peerInfoToWire(self)})
	if err != nil {
		cancel()
		return fromStatus("discovery advertise", err)
	}
	if _, err := stream.Recv(); err != nil {
		cancel()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("discovery advertise: plugin ended the announcement before it started")
		}
		return fromStatus("discovery advertise", err)
	}
	go func() {
		defer cancel()
		for {
			if _, err := stream.Recv(); err != nil {
				return
			}
		}
	}()
	return nil
}

func (d *remoteDiscovery) FindPeers(ctx context.Context, namespace string) (<-chan PeerInfo, error) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := d.c.FindPeers(sctx, &wirev1.FindPeersRequest{Namespace: namespace})
	if err != nil {
		cancel()
		return nil, fromStatus("discovery find peers", err)
	}
	if _, err := stream.Recv(); err != nil {
		cancel()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("discovery find peers: plugin ended the search before it started")
		}
		return nil, fromStatus("discovery find peers", err)
	}
	return peerStream(ctx, cancel, stream), nil
}
