package messenger_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/plugins/store"
)

// BenchmarkSendLocal measures Send on a one-member group: seal, append,
// save keys, announce.
func BenchmarkSendLocal(b *testing.B) {
	ctx := context.Background()
	sn := simnet.New()
	defer sn.Close()
	n := newTestNode(b, sn, "a")
	if _, err := n.m.CreateGroup(ctx, "g"); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.m.Send(ctx, "g", body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliveryThreeNodes measures one message sent by a member until
// the two other members have it delivered (simnet, no latency).
func BenchmarkDeliveryThreeNodes(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, nodes, ref := threeMembers(b)
	subs := make([]<-chan *group.Message, 0, 2)
	for _, n := range nodes[1:] {
		ch, _, err := n.m.Subscribe(ctx, ref)
		if err != nil {
			b.Fatal(err)
		}
		subs = append(subs, ch)
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		if _, err := nodes[0].m.Send(ctx, ref, fmt.Appendf(nil, "m%d", i)); err != nil {
			b.Fatal(err)
		}
		for _, ch := range subs {
			<-ch
		}
	}
	_ = messenger.ListOptions{}
}

// BenchmarkCatchUpPebble measures a member catching up on 500 messages
// sent while it was down, over simnet, with its group logs and delivered
// messages in a pebble store on disk (synced writes, as `skein run`):
// from reopening its messenger until all are delivered. It reports
// messages per second.
func BenchmarkCatchUpPebble(b *testing.B) {
	const n = 500
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		sn := simnet.New()
		a := newTestNode(b, sn, "a")
		st, err := store.Open(ctx, store.Config{Path: filepath.Join(b.TempDir(), "store")})
		if err != nil {
			b.Fatal(err)
		}
		c := newTestNodeWith(b, sn, "c", func(cfg *messenger.Config) { cfg.Store = st })
		c.st = st
		sn.ConnectAll()
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
		if err := c.m.Close(); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if _, err := a.m.Send(ctx, "g", fmt.Appendf(nil, "message %d", i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		t0 := time.Now()
		c.start(b)
		waitFor(b, "c caught up", func() bool {
			msgs, err := c.m.Messages(ctx, gi.ID.String(), messenger.ListOptions{})
			return err == nil && len(msgs) == n
		})
		b.ReportMetric(n/time.Since(t0).Seconds(), "msgs/s")
		b.StopTimer()
		_ = c.m.Close()
		_ = a.m.Close()
		_ = st.Stop(ctx)
		_ = sn.Close()
		b.StartTimer()
	}
}

// BenchmarkSendPebble measures acknowledged sends on a one-member group
// whose logs and readable copies are in a pebble store on disk (synced,
// as `skein run`), over simnet, by 1 and 16 concurrent senders: what the
// node does for a send without the client API's gRPC and the plugins'
// processes. It reports messages per second.
func BenchmarkSendPebble(b *testing.B) {
	for _, senders := range []int{1, 16} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			ctx := context.Background()
			sn := simnet.New()
			defer sn.Close()
			st, err := store.Open(ctx, store.Config{Path: filepath.Join(b.TempDir(), "store")})
			if err != nil {
				b.Fatal(err)
			}
			n := newTestNodeWith(b, sn, "a", func(cfg *messenger.Config) { cfg.Store = st })
			n.st = st
			if _, err := n.m.CreateGroup(ctx, "g"); err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 200)
			t0 := time.Now()
			if senders == 1 {
				for b.Loop() {
					if _, err := n.m.Send(ctx, "g", body); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism((senders + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := n.m.Send(ctx, "g", body); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
		})
	}
}
