package replication_test

import (
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
)

const benchEntries = 1000

// benchPair is two replicas, a and b, that can be kept apart and then
// brought together.
type benchPair struct {
	peers   []*peerNode
	join    func() // connect b to a
	isolate func() // keep b from a (before join)
}

// benchReplicate measures replicating benchEntries from a to b:
//   - live: b connected while a appends; from the first append until b has
//     them all (bounded by how fast a appends);
//   - catch-up: a appends while b is away; from b connecting until b has
//     them all (head exchange, fetching, verification).
func benchReplicate(b *testing.B, setup func(b *testing.B) benchPair) {
	benchReplicateN(b, benchEntries, []string{"live", "catch-up"}, setup)
}

// benchReplicateN is benchReplicate with n entries and the modes chosen.
func benchReplicateN(b *testing.B, n int, modes []string, setup func(b *testing.B) benchPair) {
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				p := setup(b)
				base := p.peers[0].log.Len()
				if mode == "catch-up" {
					p.isolate()
					appendN(b, p.peers[0], n, "bench")
				} else {
					p.join()
					// Let the network settle (gossipsub forms its mesh).
					appendN(b, p.peers[1], 1, "warm-up")
					base++
					waitFor(b, 30*time.Second, lens(p.peers), func() bool { return converged(p.peers, base) })
					// and until pubsub delivers (gossipsub grafts its mesh at
					// a heartbeat): a digest from a reaches b.
					r0 := p.peers[1].rep.Status().Logs[0].Received
					waitFor(b, 30*time.Second, func() string { return "pubsub delivery" }, func() bool {
						return p.peers[1].rep.Status().Logs[0].Received > r0+1
					})
				}
				b.StartTimer()
				start := time.Now()
				if mode == "catch-up" {
					p.join()
				} else {
					appendN(b, p.peers[0], n, "bench")
				}
				waitFor(b, 60*time.Second, lens(p.peers), func() bool { return converged(p.peers, base+n) })
				total += time.Since(start)
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "entries/s")
		})
	}
}

func BenchmarkReplicate1000Simnet(b *testing.B) {
	cases := []struct {
		name string
		link simnet.Link
	}{
		{"no latency", simnet.Link{}},
		{"1ms latency 20% loss", simnet.Link{Latency: time.Millisecond, Loss: 0.2}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			benchReplicate(b, func(b *testing.B) benchPair {
				sn, peers := simCluster(b, 2, []simnet.Option{simnet.WithDefaultLink(tc.link)}, fastOpts()...)
				return benchPair{peers: peers,
					isolate: func() { sn.Partition([]string{"b"}) },
					join:    sn.Heal}
			})
		})
	}
}

// BenchmarkReplicate1000IPFS runs over plugins/ipfs on 127.0.0.1, with the
// bulk entry fetch (the default) and without it (every entry by bitswap,
// one DAG level per round trip).
func BenchmarkReplicate1000IPFS(b *testing.B) {
	for _, fetch := range []struct {
		name string
		opts []replication.Option
	}{
		{"bulk", nil},
		{"bitswap only", []replication.Option{replication.WithBulkFetch(0, 0)}},
	} {
		b.Run(fetch.name, func(b *testing.B) {
			benchReplicate(b, func(b *testing.B) benchPair {
				opts := append([]replication.Option{replication.WithAntiEntropyInterval(200 * time.Millisecond)}, fetch.opts...)
				peers := ipfsCluster(b, 2, false, opts...)
				return benchPair{peers: peers,
					isolate: func() {},
					join:    func() { connectPeers(b, peers) }}
			})
		})
	}
}

// BenchmarkCatchUp5000IPFS: catch-up of 5,000 entries over plugins/ipfs on
// 127.0.0.1, with the bulk entry fetch and with bitswap only.
func BenchmarkCatchUp5000IPFS(b *testing.B) {
	for _, fetch := range []struct {
		name string
		opts []replication.Option
	}{
		{"bulk", nil},
		{"bitswap only", []replication.Option{replication.WithBulkFetch(0, 0)}},
	} {
		b.Run(fetch.name, func(b *testing.B) {
			benchReplicateN(b, 5000, []string{"catch-up"}, func(b *testing.B) benchPair {
				opts := append([]replication.Option{replication.WithAntiEntropyInterval(200 * time.Millisecond)}, fetch.opts...)
				peers := ipfsCluster(b, 2, false, opts...)
				return benchPair{peers: peers,
					isolate: func() {},
					join:    func() { connectPeers(b, peers) }}
			})
		})
	}
}
