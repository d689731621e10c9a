package group_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// A group's logs answer bulk entry requests (replication.EntryReader),
// reading what they send in runs.
var (
	_ replication.EntryReader    = (*group.ReplicatedLog)(nil)
	_ replication.EntryRunReader = (*group.ReplicatedLog)(nil)
)

// replicated is one member's group and the replicator that carries its two
// logs.
type replicated struct {
	g   *group.Group
	rep *replication.Replicator
	msg replication.LogID
}

func replicateGroup(t testing.TB, rep *replication.Replicator, g *group.Group) *replicated {
	t.Helper()
	key, err := g.ReplicationKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Add(key[:], g.MetaLog().Channel(), g.MetaLog()); err != nil {
		t.Fatal(err)
	}
	id, err := rep.Add(key[:], g.MessageLog().Channel(), g.MessageLog())
	if err != nil {
		t.Fatal(err)
	}
	return &replicated{g: g, rep: rep, msg: id}
}

func (r *replicated) status(t testing.TB) replication.LogStatus {
	t.Helper()
	for _, ls := range r.rep.Status().Logs {
		if ls.ID == r.msg {
			return ls
		}
	}
	t.Fatal("message log not replicated")
	return replication.LogStatus{}
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// catchUpPair is alice and bob in one group, each group carried by its own
// replicator over its own network node.
type catchUpPair struct {
	cut, heal func()
	a, b      *replicated
}

// simnetPair is a catchUpPair over simnet.
func simnetPair(t testing.TB) *catchUpPair {
	t.Helper()
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	na, _ := sn.AddNode("alice")
	nb, _ := sn.AddNode("bob")
	p := newCatchUpPair(t, na, nb, sn.ConnectAll)
	p.cut = func() { sn.Partition([]string{"bob"}) }
	p.heal = sn.Heal
	return p
}

// ipfsPair is a catchUpPair over two linked-in plugins/ipfs nodes on
// 127.0.0.1.
func ipfsPair(t testing.TB) *catchUpPair {
	t.Helper()
	start := func() *ipfs.Network {
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
	na, nb := start(), start()
	connect := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := nb.Connect(ctx, sdk.PeerInfo{ID: na.PeerID(), Addrs: na.Addrs()}); err != nil {
			t.Fatalf("connect: %v", err)
		}
	}
	p := newCatchUpPair(t, na, nb, connect, replication.WithPubsubValidated(na.PubsubValidated()))
	// The plugin redials a peer it wants: the cut is a block, both ways;
	// a block that ended in the past lifts it.
	block := func(d time.Duration) {
		ctx := context.Background()
		_ = na.BlockPeer(ctx, nb.PeerID(), "bench", d)
		_ = nb.BlockPeer(ctx, na.PeerID(), "bench", d)
	}
	p.cut = func() {
		block(time.Hour)
		waitUntil(t, "bob disconnected", func() bool { return len(na.Host().Network().Peers()) == 0 })
	}
	p.heal = func() { block(-time.Second); connect() }
	return p
}

func newCatchUpPair(t testing.TB, na, nb sdk.Network, connect func(), extra ...replication.Option) *catchUpPair {
	t.Helper()
	ctx := context.Background()
	// No anti-entropy: bob catches up from the heads exchanged when the
	// connection comes back.
	opts := append([]replication.Option{replication.WithAntiEntropyInterval(time.Hour)}, extra...)
	start := func(net sdk.Network) *replication.Replicator {
		r, err := replication.New(net, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	ra, rb := start(na), start(nb)
	connect()

	alice, _ := group.NewIdentity()
	bob, _ := group.NewIdentity()
	ga, err := group.Create(ctx, alice, group.Storage{Blocks: ra.BlockStore(), KV: log.NewMemKV()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ga.Close() })
	a := replicateGroup(t, ra, ga)
	inv, err := ga.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := group.Join(ctx, bob, inv, group.Storage{Blocks: rb.BlockStore(), KV: log.NewMemKV()}, "alice", ga.Heads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gb.Close() })
	b := replicateGroup(t, rb, gb)
	waitUntil(t, "alice sees bob", func() bool { return len(ga.Members()) == 2 })
	return &catchUpPair{a: a, b: b}
}

// away cuts bob off, has alice send n messages, and waits for her
// announcer to finish its paced burst, so that bob catches up from what he
// asks for, not from announcements.
func (p *catchUpPair) away(t testing.TB, n int) {
	t.Helper()
	p.cut()
	for i := range n {
		if _, err := p.a.g.Send(context.Background(), fmt.Appendf(nil, "while bob was away %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "alice's announcer to go quiet", func() bool {
		return time.Since(p.a.status(t).LastAnnounce) > 100*time.Millisecond
	})
}

// back heals the partition and waits until bob holds want message
// entries.
func (p *catchUpPair) back(t testing.TB, want int) {
	t.Helper()
	p.heal()
	waitUntil(t, "bob caught up", func() bool { return p.b.status(t).Entries >= want })
}

// TestGroupCatchUpUsesBulkFetch: a member that was cut off catches up on
// its group's message log from a peer's replicator in bulk
// (/skein/entries/1), not one block fetch per entry.
func TestGroupCatchUpUsesBulkFetch(t *testing.T) {
	n := 600
	if testing.Short() {
		n = 200
	}
	p := simnetPair(t)
	p.away(t, n)
	p.back(t, n)
	got := 0
	for _, err := range p.b.g.Messages(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != n {
		t.Fatalf("bob reads %d messages, want %d", got, n)
	}
	st := p.b.status(t)
	if st.BulkReceived == 0 {
		t.Fatalf("bob's catch-up did not use the bulk fetch (%d bulk requests)", st.BulkRequests)
	}
	if served := p.a.status(t).BulkServed; served == 0 {
		t.Fatal("alice served no entries in bulk")
	}
	t.Logf("caught up %d messages: %d bulk requests, %d blocks", n, st.BulkRequests, st.BulkReceived)
}

// BenchmarkGroupCatchUp measures a member catching up on 10,000 messages
// of its group (linked in, logs in memory), over simnet and over two
// plugins/ipfs nodes on 127.0.0.1: from the connection coming back until
// its replicator holds them all (verified, opened and delivered). It
// reports messages per second.
func BenchmarkGroupCatchUp(b *testing.B) {
	const n = 10_000
	for _, tc := range []struct {
		name string
		pair func(testing.TB) *catchUpPair
	}{{"simnet", simnetPair}, {"ipfs", ipfsPair}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				p := tc.pair(b)
				p.away(b, n)
				b.StartTimer()
				t0 := time.Now()
				p.back(b, n)
				b.ReportMetric(n/time.Since(t0).Seconds(), "msgs/s")
			}
		})
	}
}
