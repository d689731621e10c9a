package simnet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// sparse adds n nodes connected as a ring plus deg-1 random links each.
func sparse(t testing.TB, net *simnet.Network, n, deg int) []*simnet.Node {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%04d", i)
	}
	ns := nodes(t, net, ids...)
	r := rand.New(rand.NewPCG(1, 2))
	var pairs [][2]string
	for i := range n {
		pairs = append(pairs, [2]string{ids[i], ids[(i+1)%n]})
		for range deg - 1 {
			pairs = append(pairs, [2]string{ids[i], ids[r.IntN(n)]})
		}
	}
	net.ConnectPairs(pairs)
	return ns
}

// collector counts each subscriber's messages by payload.
type collector struct {
	mu  sync.Mutex
	got []map[string]int
	all chan struct{}
}

func subscribeAll(t testing.TB, ns []*simnet.Node, topic string, want int) *collector {
	t.Helper()
	c := &collector{got: make([]map[string]int, len(ns)), all: make(chan struct{})}
	var remaining sync.WaitGroup
	for i, nd := range ns {
		c.got[i] = map[string]int{}
		ch, err := nd.Subscribe(t.Context(), topic)
		if err != nil {
			t.Fatal(err)
		}
		remaining.Add(1)
		go func() {
			done := false
			for m := range ch {
				c.mu.Lock()
				c.got[i][string(m.Data)]++
				n := len(c.got[i])
				c.mu.Unlock()
				if !done && n >= want {
					done = true
					remaining.Done()
				}
			}
		}()
	}
	go func() { remaining.Wait(); close(c.all) }()
	return c
}

func TestMeshReachesEveryNodeOnceDespiteLoss(t *testing.T) {
	const n, msgs = 200, 20
	net := simnet.New(simnet.WithPubsub(simnet.PubsubMesh), simnet.WithSeed(3),
		simnet.WithMesh(simnet.MeshParams{Heartbeat: 50 * time.Millisecond}),
		simnet.WithDefaultLink(simnet.Link{Latency: time.Millisecond, Loss: 0.05}))
	defer net.Close()
	ns := sparse(t, net, n, 8)
	c := subscribeAll(t, ns, "t", msgs)
	// Every publisher's own copy counts as had: it is not delivered back.
	for i := range msgs {
		c.mu.Lock()
		c.got[i*7%n][fmt.Sprint(i)] = 1
		c.mu.Unlock()
		if err := ns[i*7%n].Publish(t.Context(), "t", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-c.all:
	case <-time.After(30 * time.Second):
		t.Fatal("not every node got every message")
	}
	c.mu.Lock()
	for i, g := range c.got {
		for body, k := range g {
			if k != 1 {
				t.Errorf("node %d got %q %d times", i, body, k)
			}
		}
	}
	c.mu.Unlock()
	// Gossip goes on after the last delivery: stop the network so that the
	// counters compared below are read at one moment, not while they move.
	if err := net.Close(); err != nil {
		t.Fatal(err)
	}
	st := net.Stats()
	if st.Duplicate == 0 || st.Gossip == 0 || st.Lost == 0 {
		t.Errorf("a lossy mesh shows duplicates, gossip and losses: %+v", st)
	}
	// Bounded fan-out: each copy's sender is a publisher (all its
	// connections) or a relay (its mesh, at most Dhi = 12).
	if per := float64(st.Sent) / float64(msgs*n); per > 20 {
		t.Errorf("%.1f copies per message and node, want a bounded mesh (≤ 20)", per)
	}
	var sent, received uint64
	for _, nd := range ns {
		s := nd.Stats()
		sent += s.Sent
		received += s.Received
	}
	if sent != st.Sent || received != st.Received {
		t.Errorf("per-node sums %d sent / %d received, network %d / %d", sent, received, st.Sent, st.Received)
	}
	ts := net.TopicStats()
	if len(ts) != 1 || ts[0].Topic != "t" || ts[0].Published != msgs || ts[0].Sent != st.Sent {
		t.Errorf("topic stats %+v, network %+v", ts, st)
	}
}

// TestDeliveredCountsSubscriptions: Delivered counts copies per
// subscription, so a second subscriber on a node doubles it while Sent and
// Received count copies on links.
func TestDeliveredCountsSubscriptions(t *testing.T) {
	cases := []struct {
		name string
		subs int
	}{{"one subscription each", 1}, {"two subscriptions each", 2}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			net := simnet.New(simnet.WithPubsub(simnet.PubsubFlood))
			defer net.Close()
			ns := nodes(t, net, "a", "b", "c", "d")
			net.ConnectAll()
			var chans []<-chan sdk.PubsubMessage
			for _, nd := range ns[1:] {
				for range tc.subs {
					ch, err := nd.Subscribe(t.Context(), "t")
					if err != nil {
						t.Fatal(err)
					}
					chans = append(chans, ch)
				}
			}
			if err := ns[0].Publish(t.Context(), "t", []byte("x")); err != nil {
				t.Fatal(err)
			}
			for _, ch := range chans {
				recv(t, ch)
			}
			st := net.Stats()
			if st.Sent != 3 || st.Received != 3 || st.Delivered != uint64(3*tc.subs) {
				t.Fatalf("stats %+v: want 3 sent, 3 received, %d delivered", st, 3*tc.subs)
			}
		})
	}
}

// TestThousandNodesCostLinearGoroutines: a thousand subscribed nodes and
// their traffic add goroutines in proportion to the subscriptions, not the
// links, and Close returns.
func TestThousandNodesCostLinearGoroutines(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 nodes")
	}
	const n = 1000
	before := runtime.NumGoroutine()
	net := simnet.New(simnet.WithDefaultLink(simnet.Link{Latency: time.Millisecond}))
	ns := sparse(t, net, n, 8)
	ctx, cancel := context.WithCancel(t.Context())
	c := subscribeAll(t, ns[1:], "t", 1) // the publisher need not subscribe
	if err := ns[0].Publish(ctx, "t", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.all:
	case <-time.After(30 * time.Second):
		t.Fatal("the message did not reach every node")
	}
	// Per subscription: its forwarder and the collector's reader.
	if g := runtime.NumGoroutine() - before; g > 2*n+10 {
		t.Errorf("%d goroutines for %d nodes", g, n)
	}
	cancel()
	if err := net.Close(); err != nil {
		t.Fatal(err)
	}
}
