package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// BenchmarkBitswapOverAttachedTransport moves 16 blocks of 1 MiB by
// bitswap between two nodes connected only through the attached transport,
// with the plugins linked in and out of process (network and transport
// each in its own process: the bytes cross the transport between the two
// network processes, then reach the node over the plugin wire).
func BenchmarkBitswapOverAttachedTransport(b *testing.B) {
	const blocks, size = 16, 1 << 20
	for _, shape := range nodeShapes {
		b.Run(shape.name, func(b *testing.B) {
			dir := plugintest.SocketDir(b)
			na := startShapedNode(b, shape, filepath.Join(dir, "a.sock"))
			nb := startShapedNode(b, shape, filepath.Join(dir, "b.sock"))
			nwA, nwB := nodeNetwork(b, na), nodeNetwork(b, nb)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if err := nwA.Connect(ctx, sdk.PeerInfo{ID: nwB.PeerID(), Addrs: nwB.Addrs()}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(blocks * size)
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				var cids [][]byte
				var blks []sdk.Block
				for j := range blocks {
					data := make([]byte, size)
					_, _ = rand.Read(data)
					copy(data, fmt.Sprintf("%d/%d", i, j))
					blk := rawTestBlock(b, data)
					blks = append(blks, blk)
					cids = append(cids, blk.CID)
				}
				if err := nwB.PutBlocks(ctx, blks); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				n := 0
				for _, err := range nwA.GetBlocks(ctx, cids) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != blocks {
					b.Fatalf("got %d blocks", n)
				}
			}
		})
	}
}
