package messenger

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/sdk"
)

// storeKV adapts an sdk.Store to the log.KV a group's logs persist in.
type storeKV struct{ s sdk.Store }

var _ log.KV = storeKV{}

func mapNotFound(err error) error {
	if errors.Is(err, sdk.ErrNotFound) {
		return fmt.Errorf("%w: %w", log.ErrNotFound, err)
	}
	return err
}

func (k storeKV) Get(ctx context.Context, key []byte) ([]byte, error) {
	v, err := k.s.Get(ctx, key)
	return v, mapNotFound(err)
}

func (k storeKV) Put(ctx context.Context, key, value []byte) error { return k.s.Put(ctx, key, value) }

func (k storeKV) Delete(ctx context.Context, key []byte) error { return k.s.Delete(ctx, key) }

func (k storeKV) Has(ctx context.Context, key []byte) (bool, error) { return k.s.Has(ctx, key) }

func (k storeKV) Batch(ctx context.Context, ops []log.KVOp, sync bool) error {
	out := make([]sdk.Op, len(ops))
	for i, o := range ops {
		out[i] = sdk.Op{Key: o.Key, Value: o.Value, Delete: o.Delete}
	}
	return k.s.Batch(ctx, out, sync)
}

func (k storeKV) Query(ctx context.Context, q log.KVQuery) iter.Seq2[log.KVPair, error] {
	return func(yield func(log.KVPair, error) bool) {
		for kv, err := range k.s.Query(ctx, sdk.Query{Prefix: q.Prefix, KeysOnly: q.KeysOnly, Limit: q.Limit}) {
			if !yield(log.KVPair{Key: kv.Key, Value: kv.Value}, err) || err != nil {
				return
			}
		}
	}
}

// networkBlocks adapts an sdk.Network's blockstore (local, backed by the
// network for blocks it lacks) to the log.BlockStore of a group's logs.
type networkBlocks struct{ n sdk.Network }

var (
	_ log.BlockStore  = networkBlocks{}
	_ log.BlockPutter = networkBlocks{}
)

// blockGetTimeout (a var for tests) bounds one block read whose caller set no deadline: a
// block missing locally that no peer serves must not hang the caller (for
// instance reopening a group at start) for ever.
var blockGetTimeout = 30 * time.Second

func (b networkBlocks) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, blockGetTimeout)
		defer cancel()
	}
	for blk, err := range b.n.GetBlocks(ctx, [][]byte{c.Bytes()}) {
		if err != nil {
			return nil, fmt.Errorf("block %s is neither stored here nor served by a peer: %w", c, mapNotFound(err))
		}
		return blk.Data, nil
	}
	return nil, fmt.Errorf("get block %s: %w", c, log.ErrNotFound)
}

func (b networkBlocks) GetMany(ctx context.Context, cids []cid.Cid) iter.Seq2[log.Block, error] {
	return func(yield func(log.Block, error) bool) {
		req := make([][]byte, len(cids))
		for i, c := range cids {
			req[i] = c.Bytes()
		}
		for blk, err := range b.n.GetBlocks(ctx, req) {
			if err != nil {
				// A failure naming its block is that block's alone: the
				// join marks it missing and keeps the others. Only a
				// failure naming none stops the whole fetch.
				c, cerr := cid.Cast(blk.CID)
				if cerr != nil {
					yield(log.Block{}, mapNotFound(err))
					return
				}
				if !yield(log.Block{CID: c}, mapNotFound(err)) {
					return
				}
				continue
			}
			c, cerr := cid.Cast(blk.CID)
			if cerr != nil {
				yield(log.Block{}, fmt.Errorf("network returned a block with a bad cid: %w", cerr))
				return
			}
			if !yield(log.Block{CID: c, Data: blk.Data}, nil) {
				return
			}
		}
	}
}

func (b networkBlocks) Put(ctx context.Context, c cid.Cid, data []byte) error {
	return b.n.PutBlocks(ctx, []sdk.Block{{CID: c.Bytes(), Data: data}})
}

// PutMany implements log.BlockPutter: one PutBlocks call (one
// cross-process call and one synced write) for a join's blocks.
func (b networkBlocks) PutMany(ctx context.Context, blocks []log.Block) error {
	in := make([]sdk.Block, len(blocks))
	for i, blk := range blocks {
		in[i] = sdk.Block{CID: blk.CID.Bytes(), Data: blk.Data}
	}
	return b.n.PutBlocks(ctx, in)
}

func (b networkBlocks) Has(ctx context.Context, c cid.Cid) (bool, error) {
	return b.n.HasBlock(ctx, c.Bytes())
}
