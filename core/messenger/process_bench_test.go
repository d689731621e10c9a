package messenger_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/plugins/store"
	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

func TestMain(m *testing.M) {
	// The process benchmarks re-execute this binary as the network and
	// store plugins.
	plugintest.Main(m, map[string]func() sdk.Plugin{
		ipfs.ID:  func() sdk.Plugin { return ipfs.New() },
		store.ID: func() sdk.Plugin { return store.New() },
	})
}

// processNode is a messenger whose network (plugins/ipfs on 127.0.0.1)
// and store (pebble, synced) run out of process, as `skein init`
// configures them.
type processNode struct {
	m   *messenger.Messenger
	net sdk.Network
}

func startProcessNode(tb testing.TB) *processNode {
	tb.Helper()
	np := plugintest.StartProcess(tb, ipfs.ID, plugintest.WithConfig(map[string]any{
		"data_dir": tb.TempDir(), "listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false,
	}))
	net, ok := np.Network()
	if !ok {
		tb.Fatal("the ipfs plugin serves no network")
	}
	sp := plugintest.StartProcess(tb, store.ID, plugintest.WithConfig(map[string]any{"path": tb.TempDir()}))
	st, ok := sp.Store()
	if !ok {
		tb.Fatal("the store plugin serves no store")
	}
	ks, err := crypto.OpenKeystore(filepath.Join(tb.TempDir(), "keys"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ks.Close() })
	m, err := messenger.New(context.Background(), messenger.Config{Keystore: ks, Store: st, Network: net,
		Replication: []replication.Option{replication.WithPubsubValidated(true)}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return &processNode{m: m, net: net}
}

// blockBothWays cuts a and b apart for d (a nanosecond: lets them meet
// again).
func blockBothWays(tb testing.TB, a, b sdk.Network, d time.Duration) {
	tb.Helper()
	ctx := context.Background()
	for _, p := range [][2]sdk.Network{{a, b}, {b, a}} {
		pb, ok := p[0].(sdk.PeerBlocker)
		if !ok {
			tb.Fatal("the network cannot block peers")
		}
		if err := pb.BlockPeer(ctx, p[1].PeerID(), "bench", d); err != nil {
			tb.Fatal(err)
		}
	}
}

func connectProcess(tb testing.TB, a, b sdk.Network) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, sdk.PeerInfo{ID: b.PeerID(), Addrs: b.Addrs()}); err != nil {
		tb.Fatalf("connect: %v", err)
	}
}

// BenchmarkCatchUpProcess measures a member catching up on 10,000
// messages sent while it was cut off, both nodes with their network and
// store plugins out of process: from the connection coming back until all
// are delivered. It reports messages per second.
func BenchmarkCatchUpProcess(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		a, c := startProcessNode(b), startProcessNode(b)
		connectProcess(b, c.net, a.net)
		gi, err := a.m.CreateGroup(ctx, "g")
		if err != nil {
			b.Fatal(err)
		}
		inv, err := a.m.Invite(ctx, "g")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.m.JoinGroup(ctx, inv.Token(), "g"); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "c is a member", func() bool { ms, err := a.m.Members("g"); return err == nil && len(ms) == 2 })
		if _, err := a.m.Send(ctx, "g", []byte("hello")); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "c has the first message", func() bool {
			msgs, err := c.m.Messages(ctx, gi.ID.String(), messenger.ListOptions{})
			return err == nil && len(msgs) == 1
		})
		blockBothWays(b, a.net, c.net, time.Hour)
		body := make([]byte, 200)
		for i := range n - 1 {
			copy(body, fmt.Appendf(nil, "message %d", i))
			if _, err := a.m.Send(ctx, "g", body); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		t0 := time.Now()
		blockBothWays(b, a.net, c.net, time.Nanosecond)
		connectProcess(b, c.net, a.net)
		// The message log's length, not Messages: reading 10,000 messages
		// at every poll would weigh on what is measured.
		deadline := time.Now().Add(5 * time.Minute)
		for {
			st, err := c.m.SyncStatus(ctx, gi.ID.String())
			if err == nil && len(st) == 1 && len(st[0].Logs) == 2 && st[0].Logs[1].Entries >= n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("c did not catch up in 5 minutes")
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.ReportMetric(n/time.Since(t0).Seconds(), "msgs/s")
		b.StopTimer()
		msgs, err := c.m.Messages(ctx, gi.ID.String(), messenger.ListOptions{})
		if err != nil || len(msgs) != n {
			b.Fatalf("c reads %d messages (%v), want %d", len(msgs), err, n)
		}
		b.StartTimer()
	}
}
