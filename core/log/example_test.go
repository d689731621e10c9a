package log_test

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/skein-p2p/skein/core/log"
)

func Example() {
	ctx := context.Background()
	seedA, seedB := make([]byte, 32), make([]byte, 32)
	seedB[0] = 1
	keyA, keyB := ed25519.NewKeyFromSeed(seedA), ed25519.NewKeyFromSeed(seedB)
	access := log.AllowWriters(keyA.Public().(ed25519.PublicKey), keyB.Public().(ed25519.PublicKey))

	// Two replicas of one log, each with its own stores and device key.
	blocksA, blocksB := log.NewMemBlockStore(), log.NewMemBlockStore()
	a, err := log.Open(ctx, "chat", blocksA, log.NewMemKV(), log.NewKeySigner(keyA), access)
	if err != nil {
		panic(err)
	}
	defer a.Close()
	b, err := log.Open(ctx, "chat", blocksB, log.NewMemKV(), log.NewKeySigner(keyB), access)
	if err != nil {
		panic(err)
	}
	defer b.Close()

	a.Append(ctx, []byte("hello from a"))
	b.Append(ctx, []byte("hello from b"))

	// Each joins the other's heads, fetching blocks from the other's store
	// (in Skein: from the network).
	if _, err := a.Join(ctx, b.Heads(), "peer-b", log.FetchFrom(blocksB)); err != nil {
		panic(err)
	}
	if _, err := b.Join(ctx, a.Heads(), "peer-a", log.FetchFrom(blocksA)); err != nil {
		panic(err)
	}
	reply, _ := b.Append(ctx, []byte("both seen"))
	fmt.Println("reply merges", len(reply.Next), "heads")

	// Both replicas list the same entries in the same order.
	for e, err := range b.Entries(ctx) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Time, string(e.Payload))
	}
	// Output:
	// reply merges 2 heads
	// 1 hello from a
	// 1 hello from b
	// 2 both seen
}
