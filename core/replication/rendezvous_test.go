package replication_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// Two replicas of a topic with no connection and no address of each other
// meet through the network's content routing (the rendezvous) and
// converge; a third one on the other side of a partition is not found
// until the partition heals.
func TestRendezvousConnectsPeersOfATopic(t *testing.T) {
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	keys := []ed25519.PrivateKey{newKey(t), newKey(t), newKey(t)}
	var pubs []ed25519.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Public().(ed25519.PublicKey))
	}
	var peers []*peerNode
	var hooked sync.Map // "a found b" -> true, from WithRendezvousConnected
	for i, name := range []string{"a", "b", "c"} {
		nd, err := sn.AddNode(name)
		if err != nil {
			t.Fatal(err)
		}
		hook := replication.WithRendezvousConnected(func(id string) { hooked.Store(name+" found "+id, true) })
		peers = append(peers, startPeer(t, name, nd, keys[i], log.AllowWriters(pubs...),
			fastOpts(replication.WithRendezvousInterval(time.Minute), hook)...))
	}
	// A node that replicates another topic is never dialled.
	other, err := sn.AddNode("other")
	if err != nil {
		t.Fatal(err)
	}
	otherRep, err := replication.New(other, replication.WithRendezvousInterval(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := otherRep.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = otherRep.Close() })
	otherLog, err := log.Open(context.Background(), testLogID, otherRep.BlockStore(), log.NewMemKV(), log.NewKeySigner(newKey(t)), log.AllowWriters())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = otherLog.Close() })
	if _, err := otherRep.Add([]byte("another group's secret, 32 bytes"), "messages", otherLog); err != nil {
		t.Fatal(err)
	}

	sn.Partition([]string{"a", "b", "other"}, []string{"c"})
	a, b, c := peers[0], peers[1], peers[2]
	appendN(t, a, 3, "a")
	appendN(t, b, 2, "b")
	waitFor(t, 30*time.Second, lens(peers[:2]), func() bool { return converged(peers[:2], 5) })
	ra, rb := a.rep.Status().Logs[0].Rendezvous, b.rep.Status().Logs[0].Rendezvous
	if ra.Found+rb.Found == 0 || ra.Last.IsZero() || rb.Last.IsZero() || ra.Error != "" || rb.Error != "" {
		t.Fatalf("rendezvous status: a %+v, b %+v; want rounds without errors that found the other", ra, rb)
	}
	if _, ab := hooked.Load("a found b"); !ab {
		if _, ba := hooked.Load("b found a"); !ba {
			t.Fatal("WithRendezvousConnected was not called for the peer a rendezvous connected")
		}
	}
	if ps, _ := other.Peers(context.Background()); len(ps) != 0 {
		t.Fatalf("the node of another topic was connected to %v", ps)
	}
	if c.log.Len() != 0 {
		t.Fatalf("c, partitioned away, has %d entries", c.log.Len())
	}
	sn.Heal()
	waitFor(t, 60*time.Second, lens(peers), func() bool { return converged(peers, 5) })
	requireSameOrder(t, peers)
}

// The rendezvous CID depends on the topic and the day only, and is a raw
// block's CID (never mistaken for a log entry).
func TestRendezvousCID(t *testing.T) {
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		t1, t2 time.Time
		topic2 string
		same   bool
	}{
		{"same day", day.Add(time.Hour), day.Add(23 * time.Hour), "t", true},
		{"next day", day.Add(23 * time.Hour), day.Add(25 * time.Hour), "t", false},
		{"time zone does not matter", day.Add(time.Hour), day.Add(time.Hour).In(time.FixedZone("x", 5*3600)), "t", true},
		{"other topic", day, day, "u", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c1, c2 := replication.RendezvousCID("t", tt.t1), replication.RendezvousCID(tt.topic2, tt.t2)
			if c1.Equals(c2) != tt.same {
				t.Fatalf("%s and %s: equal = %v, want %v", c1, c2, c1.Equals(c2), tt.same)
			}
			if c1.Prefix().Codec != 0x55 || c1.Version() != 1 {
				t.Fatalf("cid %s: want CIDv1 raw", c1)
			}
		})
	}
}

// gatedLookups is a network whose provider lookups wait for a gate and
// count how many wait at once.
type gatedLookups struct {
	*simnet.Node
	gate    chan struct{}
	mu      sync.Mutex
	waiting int
	most    int
	entered chan struct{}
}

func (g *gatedLookups) FindProviders(ctx context.Context, raw []byte) (<-chan sdk.PeerInfo, error) {
	g.mu.Lock()
	g.waiting++
	g.most = max(g.most, g.waiting)
	g.mu.Unlock()
	g.entered <- struct{}{}
	select {
	case <-g.gate:
	case <-ctx.Done():
	}
	g.mu.Lock()
	g.waiting--
	g.mu.Unlock()
	return g.Node.FindProviders(ctx, raw)
}

// A node replicating many topics runs a bounded number of rendezvous
// rounds at once (here 30 topics, at most 8 lookups under way), not one
// per topic all together.
func TestRendezvousRoundsAreBounded(t *testing.T) {
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	nd, err := sn.AddNode("many")
	if err != nil {
		t.Fatal(err)
	}
	net := &gatedLookups{Node: nd, gate: make(chan struct{}), entered: make(chan struct{}, 64)}
	r, err := replication.New(net, replication.WithRendezvousInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	const topics = 30
	for i := range topics {
		l, err := log.Open(context.Background(), testLogID, r.BlockStore(), log.NewMemKV(), log.NewKeySigner(newKey(t)), log.AllowWriters())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		if _, err := r.Add(fmt.Appendf(nil, "the secret of group number %04d", i), "messages", l); err != nil {
			t.Fatal(err)
		}
	}
	// Every topic's first round gets its lookup, a gated one at a time.
	for range topics {
		<-net.entered
		net.gate <- struct{}{}
	}
	net.mu.Lock()
	most := net.most
	net.mu.Unlock()
	if most > 8 {
		t.Fatalf("%d rendezvous lookups under way at once, want at most 8", most)
	}
}
