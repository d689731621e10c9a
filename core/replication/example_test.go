package replication_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// Two replicas of one log over a simulated network: what a appends, b gets.
func Example() {
	ctx := context.Background()
	sn := simnet.New()
	defer sn.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	access := log.AllowWriters(key.Public().(ed25519.PublicKey))
	secret := []byte("a group secret of at least 16 bytes")

	open := func(name string) *log.Log {
		node, _ := sn.AddNode(name)
		var net sdk.Network = node
		r, _ := replication.New(net, replication.WithAntiEntropyInterval(100*time.Millisecond))
		_ = r.Start(ctx)
		l, _ := log.Open(ctx, "example/messages", r.BlockStore(), log.NewMemKV(), log.NewKeySigner(key), access)
		_, _ = r.Add(secret, "messages", l)
		return l
	}
	a, b := open("a"), open("b")
	sn.ConnectAll()

	for _, text := range []string{"one", "two", "three"} {
		_, _ = a.Append(ctx, []byte(text))
	}
	for deadline := time.Now().Add(10 * time.Second); b.Len() < 3 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // polling, as a UI would
	}
	for e := range b.Entries(ctx) {
		fmt.Println(string(e.Payload))
	}
	// Output:
	// one
	// two
	// three
}
