package messenger

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
)

// maxPrefetch bounds the entries a joiner fetches ahead of group.Join.
const maxPrefetch = 1 << 20

// prefetch makes every entry reachable from a joiner's metadata heads local
// before group.Join verifies them, so that a slow or partial fetch on a
// fresh connection cannot make Join judge an entry before its ancestors
// arrived. The blocks are unverified here (Join verifies them); only their
// links are read, and the walk is bounded.
func (m *Messenger) prefetch(ctx context.Context, heads group.Heads) error {
	blocks := networkBlocks{m.cfg.Network}
	seen := map[cid.Cid]bool{}
	todo := append([]cid.Cid(nil), heads.Meta...)
	for len(todo) > 0 {
		var want []cid.Cid
		for _, c := range todo {
			if seen[c] {
				continue
			}
			seen[c] = true
			want = append(want, c)
		}
		todo = todo[:0]
		if len(seen) > maxPrefetch {
			return fmt.Errorf("prefetch: more than %d entries", maxPrefetch)
		}
		got := 0
		for b, err := range blocks.GetMany(ctx, want) {
			if err != nil {
				return fmt.Errorf("prefetch: %w", err)
			}
			got++
			e, err := log.DecodeBlock(b.CID, b.Data)
			if err != nil {
				return fmt.Errorf("prefetch %s: %w", b.CID, err)
			}
			todo = append(todo, e.Next...)
		}
		if got < len(want) {
			return fmt.Errorf("prefetch: %d of %d entries fetched", got, len(want))
		}
	}
	return nil
}
