package replication_test

import (
	"context"
	"crypto/ed25519"
	"sync"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/sdk"
)

// startIPFS starts a linked-in plugins/ipfs node on loopback only.
func startIPFS(t testing.TB) *ipfs.Network {
	t.Helper()
	n := ipfs.New()
	ctx := context.Background()
	diags, err := n.Configure(ctx, map[string]any{
		"listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false,
	})
	if err != nil || len(diags) > 0 {
		t.Fatalf("configure ipfs: %v %v", diags, err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n
}

func connectIPFS(t testing.TB, a, b *ipfs.Network) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, sdk.PeerInfo{ID: b.PeerID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

// ipfsCluster starts n replicas over plugins/ipfs, fully connected if
// connect is set.
func ipfsCluster(t testing.TB, n int, connect bool, opts ...replication.Option) []*peerNode {
	t.Helper()
	nets := make([]*ipfs.Network, n)
	keys := make([]ed25519.PrivateKey, n)
	pubs := make([]ed25519.PublicKey, n)
	for i := range nets {
		nets[i] = startIPFS(t)
		keys[i] = newKey(t)
		pubs[i] = keys[i].Public().(ed25519.PublicKey)
	}
	access := log.AllowWriters(pubs...)
	peers := make([]*peerNode, n)
	for i := range peers {
		if !nets[i].PubsubValidated() {
			t.Fatal("plugins/ipfs does not validate pubsub by default")
		}
		// As a node does: the plugin validates every pubsub message.
		o := append([]replication.Option{replication.WithPubsubValidated(nets[i].PubsubValidated())}, opts...)
		peers[i] = startPeer(t, string(rune('a'+i)), nets[i], keys[i], access, o...)
	}
	if connect {
		connectPeers(t, peers)
	}
	return peers
}

func connectPeers(t testing.TB, peers []*peerNode) {
	t.Helper()
	for i := range peers {
		for j := i + 1; j < len(peers); j++ {
			connectIPFS(t, peers[i].net.(*ipfs.Network), peers[j].net.(*ipfs.Network))
		}
	}
}

// TestReplicationOverIPFS replicates a log between three plugins/ipfs nodes
// on 127.0.0.1: announcements over gossipsub, entries over bitswap, heads
// swapped directly on connect.
func TestReplicationOverIPFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three libp2p hosts")
	}
	peers := ipfsCluster(t, 3, true, replication.WithAntiEntropyInterval(500*time.Millisecond),
		replication.WithFetchTimeout(5*time.Second))
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() { appendN(t, p, 20, p.name) })
	}
	wg.Wait()
	waitFor(t, 30*time.Second, lens(peers), func() bool { return converged(peers, 60) })
	requireSameOrder(t, peers)

	// Entries too large to travel inline move by bitswap.
	big := make([]byte, 2*replication.MaxInlineEntry)
	for i := range 5 {
		big[0] = byte(i)
		if _, err := peers[1].log.Append(context.Background(), big); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, lens(peers), func() bool { return converged(peers, 65) })
	requireSameOrder(t, peers)
}
