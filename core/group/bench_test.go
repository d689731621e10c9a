package group

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
)

// BenchmarkSend measures Send (ratchet step, header and body sealing,
// envelope, log append with signature and access check) of 200-byte
// messages into a two-member group.
func BenchmarkSend(b *testing.B) {
	n := newNet()
	rs := n.create(b, "alice", "bob")
	g := rs[0].g
	body := make([]byte, 200)
	ctx := ctxT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := g.Send(ctx, body); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	e, _ := g.msgs.Get(ctx, g.msgs.Heads()[0])
	b.ReportMetric(float64(len(e.Bytes())-len(body)), "overhead-B/entry")
	b.ReportMetric(float64(len(e.Payload)-len(body)), "envelope-overhead-B")
}

// buildGroup builds a multi-member group of n members by n-1 joins in one
// process, with no network: the creator invites, the joiner joins with the
// creator's heads, then the group settles as gossip would settle it: the
// creator gathers every member's heads and every member receives the
// creator's, round after round until a round changes nothing. Then senders
// members (the first ones) send one message each, and the group settles
// again. Every member's metadata log ends up whole.
func buildGroup(b testing.TB, n, senders int) []*replica {
	b.Helper()
	ctx := context.Background() // no deadline: the old code took minutes at N=100
	net := newNet()
	creator := &replica{name: "m0", id: newIdentity(b)}
	g, err := Create(ctx, creator.id, net.storage())
	if err != nil {
		b.Fatal(err)
	}
	creator.g = g
	rs := []*replica{creator}
	b.Cleanup(func() {
		for _, r := range rs {
			r.g.Close()
		}
	})
	for i := 1; i < n; i++ {
		inv, err := creator.g.Invite(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r := &replica{name: fmt.Sprintf("m%d", i), id: newIdentity(b)}
		if r.g, err = Join(ctx, r.id, inv, net.storage(), creator.name, creator.g.Heads()); err != nil {
			b.Fatalf("%s joins: %v", r.name, err)
		}
		rs = append(rs, r)
		settle(b, rs)
	}
	for _, r := range rs[:min(senders, len(rs))] {
		if _, err := r.g.Send(ctx, []byte("hello from "+r.name)); err != nil {
			b.Fatalf("%s sends: %v", r.name, err)
		}
	}
	settle(b, rs)
	return rs
}

// settle runs rounds through the creator (rs[0]) until the creator's heads
// stop changing.
func settle(b testing.TB, rs []*replica) {
	b.Helper()
	hub := rs[0]
	pull := func(to, from *replica) {
		if err := to.g.Receive(context.Background(), from.name, from.g.Heads()); err != nil {
			b.Fatalf("%s receives from %s: %v", to.name, from.name, err)
		}
	}
	for {
		before := hub.g.Heads()
		for _, r := range rs[1:] {
			pull(hub, r)
		}
		for _, r := range rs[1:] {
			pull(r, hub)
		}
		after := hub.g.Heads()
		if slices.EqualFunc(before.Meta, after.Meta, cid.Cid.Equals) &&
			slices.EqualFunc(before.Messages, after.Messages, cid.Cid.Equals) {
			return
		}
	}
}

// metaSize returns the number of entries and the bytes of g's metadata log.
func metaSize(b testing.TB, g *Group) (entries, bytes int) {
	b.Helper()
	for e, err := range g.meta.Entries(context.Background()) {
		if err != nil {
			b.Fatal(err)
		}
		entries++
		bytes += len(e.Bytes())
	}
	return entries, bytes
}

// BenchmarkBuildGroup measures building a group of N members by joins,
// then K of them sending one message each (see buildGroup): time and
// allocations for the whole group, the metadata log's entries and bytes
// (what every member holds), and the heap per member afterwards (the
// whole process's heap over N: blocks are shared, logs and states are
// each member's). N=1000 runs with SKEIN_BENCH_LARGE=1 (-benchtime=1x).
func BenchmarkBuildGroup(b *testing.B) {
	cases := []struct{ n, senders int }{{10, 10}, {100, 10}, {100, 100}}
	if os.Getenv("SKEIN_BENCH_LARGE") == "1" {
		cases = append(cases, struct{ n, senders int }{1000, 10})
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("N=%d/K=%d", c.n, c.senders), func(b *testing.B) {
			b.ReportAllocs()
			var rs []*replica
			for b.Loop() {
				rs = buildGroup(b, c.n, c.senders)
			}
			b.StopTimer()
			for _, r := range rs {
				if got := len(r.g.Members()); got != c.n {
					b.Fatalf("%s sees %d members, want %d", r.name, got, c.n)
				}
			}
			entries, size := metaSize(b, rs[0].g)
			b.ReportMetric(float64(entries), "meta-entries")
			b.ReportMetric(float64(size)/1024, "meta-KiB")
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc)/float64(c.n)/1024, "heap-KiB/member")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/float64(c.n-1), "ms/join")
		})
	}
}
