package replication

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/sdk"
)

// DefaultFetchParallelism bounds the blocks a BlockStore asks the network
// for at once.
const DefaultFetchParallelism = 32

// BlockStore makes an sdk.Network a log.BlockStore: blocks are put into and
// read from the network's blockstore, and blocks missing locally are
// fetched from peers (bitswap in plugins/ipfs). A fetch of a block nobody
// has lasts until the context ends, so callers bound it with a deadline.
type BlockStore struct {
	net      sdk.Network
	parallel int
}

var (
	_ log.BlockStore  = (*BlockStore)(nil)
	_ log.BlockPutter = (*BlockStore)(nil)
)

// NewBlockStore returns the adapter; parallelism bounds the blocks one
// GetMany has in flight (<= 0: DefaultFetchParallelism).
func NewBlockStore(net sdk.Network, parallelism int) *BlockStore {
	if parallelism <= 0 {
		parallelism = DefaultFetchParallelism
	}
	return &BlockStore{net: net, parallel: parallelism}
}

func mapNotFound(err error) error {
	if errors.Is(err, sdk.ErrNotFound) && !errors.Is(err, log.ErrNotFound) {
		return fmt.Errorf("%w: %w", log.ErrNotFound, err)
	}
	return err
}

// Get returns the block's bytes, fetching it from the network if needed.
func (s *BlockStore) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	for b, err := range s.GetMany(ctx, []cid.Cid{c}) {
		if err != nil {
			return nil, err
		}
		return b.Data, nil
	}
	return nil, fmt.Errorf("get block %s: %w", c, log.ErrNotFound)
}

// Put stores a block (the network verifies it hashes to its CID).
func (s *BlockStore) Put(ctx context.Context, c cid.Cid, data []byte) error {
	if err := s.net.PutBlocks(ctx, []sdk.Block{{CID: c.Bytes(), Data: data}}); err != nil {
		return fmt.Errorf("put block %s: %w", c, err)
	}
	return nil
}

// PutMany implements log.BlockPutter: the blocks in one PutBlocks call.
func (s *BlockStore) PutMany(ctx context.Context, blocks []log.Block) error {
	in := make([]sdk.Block, len(blocks))
	for i, b := range blocks {
		in[i] = sdk.Block{CID: b.CID.Bytes(), Data: b.Data}
	}
	if err := s.net.PutBlocks(ctx, in); err != nil {
		return fmt.Errorf("put %d blocks: %w", len(blocks), err)
	}
	return nil
}

// Has reports whether the block is stored locally.
func (s *BlockStore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	ok, err := s.net.HasBlock(ctx, c.Bytes())
	if err != nil {
		return false, fmt.Errorf("has block %s: %w", c, mapNotFound(err))
	}
	return ok, nil
}

// GetMany implements log.BlockGetter: it asks the network for at most the
// configured parallelism of blocks at a time and yields one result per
// requested CID.
func (s *BlockStore) GetMany(ctx context.Context, cids []cid.Cid) iter.Seq2[log.Block, error] {
	return func(yield func(log.Block, error) bool) {
		for start := 0; start < len(cids); start += s.parallel {
			chunk := cids[start:min(start+s.parallel, len(cids))]
			pending := make(map[string]cid.Cid, len(chunk))
			raw := make([][]byte, 0, len(chunk))
			for _, c := range chunk {
				if _, dup := pending[c.KeyString()]; dup {
					continue
				}
				pending[c.KeyString()] = c
				raw = append(raw, c.Bytes())
			}
			for b, err := range s.net.GetBlocks(ctx, raw) {
				c, cerr := cid.Cast(b.CID)
				if cerr != nil || len(b.CID) == 0 {
					if err == nil {
						err = fmt.Errorf("network returned a block with a bad cid: %v", cerr)
					}
					yield(log.Block{}, fmt.Errorf("get blocks: %w", mapNotFound(err)))
					return
				}
				if _, asked := pending[c.KeyString()]; !asked {
					continue
				}
				delete(pending, c.KeyString())
				if err != nil {
					if !yield(log.Block{CID: c}, fmt.Errorf("get block %s: %w", c, mapNotFound(err))) {
						return
					}
					continue
				}
				if !yield(log.Block{CID: c, Data: b.Data}, nil) {
					return
				}
			}
			if err := ctx.Err(); err != nil {
				// Every CID not had yet, in this chunk and the next, fails.
				for _, c := range pending {
					if !yield(log.Block{CID: c}, fmt.Errorf("get block %s: %w", c, err)) {
						return
					}
				}
				for _, c := range cids[start+len(chunk):] {
					if !yield(log.Block{CID: c}, fmt.Errorf("get block %s: %w", c, err)) {
						return
					}
				}
				return
			}
			for _, c := range pending {
				if !yield(log.Block{CID: c}, fmt.Errorf("get block %s: %w: the network did not return it", c, log.ErrNotFound)) {
					return
				}
			}
		}
	}
}
