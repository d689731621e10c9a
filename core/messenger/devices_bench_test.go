package messenger_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/plugins/store/memstore"
)

// benchIPFSMessenger is ipfsMessenger for a benchmark: its own libp2p
// host on loopback and a messenger over it.
func benchIPFSMessenger(tb testing.TB) (*ipfs.Network, *messenger.Messenger) {
	tb.Helper()
	n := ipfs.New()
	c := map[string]any{"data_dir": tb.TempDir(), "listen": []any{"/ip4/127.0.0.1/tcp/0"}, "relay": false, "dht_mode": "off"}
	if diags, err := n.Configure(context.Background(), c); err != nil || len(diags) > 0 {
		tb.Fatalf("configure: %v %v", diags, err)
	}
	if err := n.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	ks, err := crypto.OpenKeystore(filepath.Join(tb.TempDir(), "keys"))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := messenger.New(context.Background(), messenger.Config{Keystore: ks, Store: memstore.New(), Network: n, Logger: slog.New(slog.DiscardHandler),
		Replication: []replication.Option{replication.WithAntiEntropyInterval(300 * time.Millisecond)}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		m.Close()
		ks.Close()
		_ = n.Stop(context.Background())
	})
	return n, m
}

// BenchmarkLinkDevice measures linking a new device over real libp2p on
// loopback, from the link token to every group joined and its history
// imported: the linking device holds 5 groups of 100 messages (200 B)
// each. A fresh node per iteration (made outside the timer).
func BenchmarkLinkDevice(b *testing.B) {
	const groups, perGroup = 5, 100
	ctx := context.Background()
	_, laptop := benchIPFSMessenger(b)
	body := make([]byte, 200)
	for i := range groups {
		gi, err := laptop.CreateGroup(ctx, fmt.Sprintf("g%d", i))
		if err != nil {
			b.Fatal(err)
		}
		for range perGroup {
			if _, err := laptop.Send(ctx, gi.ID.String(), body); err != nil {
				b.Fatal(err)
			}
		}
	}
	var keys, joined, total time.Duration
	links := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		_, phone := benchIPFSMessenger(b)
		tok, _, err := laptop.LinkDevice(ctx, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := phone.JoinAccount(ctx, tok, "phone", func(p messenger.LinkProgress) {
			switch {
			case p.Step == "keys":
				keys += time.Since(start)
			case p.Step == "group" && p.Done == p.Total:
				joined += time.Since(start)
			case p.Step == "done":
				total += time.Since(start)
			}
		})
		links++
		if err != nil {
			b.Fatal(err)
		}
		if res.Messages != groups*perGroup || len(res.Groups) != groups {
			b.Fatalf("linked %d groups, %d messages; want %d, %d", len(res.Groups), res.Messages, groups, groups*perGroup)
		}
	}
	b.ReportMetric(float64(groups*perGroup), "history-msgs/op")
	// Where the time goes: the keys arrive, every group joined, history in.
	b.ReportMetric(float64(keys.Milliseconds())/float64(links), "ms-keys/op")
	b.ReportMetric(float64(joined.Milliseconds())/float64(links), "ms-joined/op")
	b.ReportMetric(float64(total.Milliseconds())/float64(links), "ms-done/op")
}
