package replication_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
)

// latencyAppends is how many single appends one latency run measures.
const latencyAppends = 200

// measureLatency appends one entry at a time on writer and returns, per
// append, the time until every reader's log has it (taken from the readers'
// log subscriptions, so no polling delay is counted). Each append waits
// for the previous one to arrive everywhere and, if gap > 0, for the next
// tick of a gap ticker (a chat's pace rather than a stream's).
func measureLatency(tb testing.TB, writer *peerNode, readers []*peerNode, n int, gap time.Duration) []time.Duration {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subs := make([]<-chan *log.Entry, len(readers))
	for i, r := range readers {
		subs[i] = r.log.Subscribe(ctx)
	}
	out := make([]time.Duration, 0, n)
	var tick <-chan time.Time
	if gap > 0 {
		t := time.NewTicker(gap)
		defer t.Stop()
		tick = t.C
	}
	for i := range n {
		if tick != nil {
			<-tick // load generation, not synchronisation
		}
		start := time.Now()
		e, err := writer.log.Append(ctx, fmt.Appendf(nil, "latency-%d", i))
		if err != nil {
			tb.Fatal(err)
		}
		var slowest time.Duration
		for j, sub := range subs {
			timeout := time.NewTimer(30 * time.Second)
		wait:
			for {
				select {
				case got := <-sub:
					if got.CID().Equals(e.CID()) {
						break wait
					}
				case <-timeout.C:
					tb.Fatalf("append %d did not reach %s within 30s", i, readers[j].name)
				}
			}
			timeout.Stop()
			slowest = max(slowest, time.Since(start))
		}
		out = append(out, slowest)
	}
	return out
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// waitPubsubReady waits until announcements from writer reach every reader
// by pubsub (gossipsub has learnt the readers' subscriptions and formed its
// mesh), so that the latency measured is that of a settled network. Before
// that, an announcement can be lost (anti-entropy repairs it later), and
// the head exchange on connecting brings the readers up to date without
// pubsub; so it appends until one append reaches every reader within
// 250 ms, which after the exchange only an announcement can do.
func waitPubsubReady(tb testing.TB, writer *peerNode, readers []*peerNode) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subs := make([]<-chan *log.Entry, len(readers))
	for i, r := range readers {
		subs[i] = r.log.Subscribe(ctx)
	}
	for attempt := range 120 {
		e, err := writer.log.Append(ctx, fmt.Appendf(nil, "warm-up-%d", attempt))
		if err != nil {
			tb.Fatal(err)
		}
		deadline := time.NewTimer(250 * time.Millisecond)
		arrived := 0
	wait:
		for j := 0; j < len(subs); {
			select {
			case got := <-subs[j]:
				if got.CID().Equals(e.CID()) {
					arrived++
					j++
				}
			case <-deadline.C:
				break wait
			}
		}
		deadline.Stop()
		if arrived == len(readers) {
			return
		}
	}
	tb.Fatal("announcements never reached every reader within 250 ms")
}

// BenchmarkAppendLatencyIPFS measures, over plugins/ipfs hosts on
// 127.0.0.1, the time from Append on one replica until the entry is in the
// log of every other one (2 and 3 nodes), with default options; it reports
// p50 and p99. "spaced" appends every 20 ms (a chat); "back-to-back"
// appends as soon as the previous one arrived everywhere (a stream of about
// a thousand a second, which the announce pace spaces by design).
func BenchmarkAppendLatencyIPFS(b *testing.B) {
	for _, n := range []int{2, 3} {
		for _, mode := range []struct {
			name string
			gap  time.Duration
		}{{"spaced", 20 * time.Millisecond}, {"back-to-back", 0}} {
			b.Run(fmt.Sprintf("%d nodes/%s", n, mode.name), func(b *testing.B) {
				var all []time.Duration
				for range b.N {
					b.StopTimer()
					peers := ipfsCluster(b, n, true, replication.WithAntiEntropyInterval(time.Second))
					waitPubsubReady(b, peers[0], peers[1:])
					b.StartTimer()
					all = append(all, measureLatency(b, peers[0], peers[1:], latencyAppends, mode.gap)...)
				}
				b.ReportMetric(float64(percentile(all, 0.5).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(percentile(all, 0.99).Microseconds())/1000, "p99-ms")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// BenchmarkPubsubLatencyIPFS is the baseline of BenchmarkAppendLatencyIPFS:
// gossipsub delivery of one digest between two plugins/ipfs hosts on
// 127.0.0.1 (publish to delivery), and one direct request round trip.
func BenchmarkPubsubLatencyIPFS(b *testing.B) {
	x, y := startIPFS(b), startIPFS(b)
	connectIPFS(b, x, y)
	ctx := context.Background()
	topic, _ := replication.Topic(testSecret)
	if _, err := x.Subscribe(ctx, topic); err != nil {
		b.Fatal(err)
	}
	sub, err := y.Subscribe(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	// Messages are content-addressed: each one distinct.
	msg := func(i int) []byte {
		a := &replication.Announcement{Digest: true, Log: replication.LogIDFor(topic, "messages"),
			Heads: []cid.Cid{cidOf(fmt.Appendf(nil, "m-%d", i))}}
		data, err := a.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	// Until the mesh forms, publish distinct warm-up messages.
	ready := false
	for k := 1; !ready && k < 300; k++ {
		if err := x.Publish(ctx, topic, msg(-k)); err != nil {
			b.Fatal(err)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-sub:
			ready = true
		case <-t.C:
		}
		t.Stop()
	}
	if !ready {
		b.Fatal("gossipsub never delivered")
	}
	b.Run("gossipsub", func(b *testing.B) {
		var ds []time.Duration
		for i := range latencyAppends {
			want := msg(i)
			start := time.Now()
			if err := x.Publish(ctx, topic, want); err != nil {
				b.Fatal(err)
			}
			deadline := time.NewTimer(5 * time.Second)
		wait:
			for {
				select {
				case m := <-sub:
					if string(m.Data) == string(want) {
						break wait
					}
				case <-deadline.C:
					b.Fatalf("message %d not delivered within 5s", i)
				}
			}
			deadline.Stop()
			ds = append(ds, time.Since(start))
		}
		b.ReportMetric(float64(percentile(ds, 0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(ds, 0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(0, "ns/op")
	})
	b.Run("direct request", func(b *testing.B) {
		if err := y.HandleRequests("/skein/bench-echo/1", func(_ context.Context, _ string, req []byte) ([]byte, error) {
			return req, nil
		}); err != nil {
			b.Fatal(err)
		}
		var ds []time.Duration
		for range latencyAppends {
			start := time.Now()
			if _, err := x.Request(ctx, y.PeerID(), "/skein/bench-echo/1", []byte("ping")); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(start))
		}
		b.ReportMetric(float64(percentile(ds, 0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(ds, 0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(0, "ns/op")
	})
}
