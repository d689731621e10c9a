package sim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sim"
)

func newCluster(t testing.TB, cfg sim.Config) *sim.Cluster {
	t.Helper()
	c, err := sim.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func TestGroupSettlesDeliversAndRemoves(t *testing.T) {
	cases := []struct {
		name   string
		nodes  int
		degree int
	}{
		{"full/8", 8, 0},
		{"sparse/24", 24, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var phases []string
			c := newCluster(t, sim.Config{Nodes: tc.nodes, Degree: tc.degree,
				Link: simnet.Link{Latency: 2 * time.Millisecond, Loss: 0.01},
				Progress: func(p sim.Progress) {
					if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
						phases = append(phases, p.Phase)
					}
				}})
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			g, err := c.NewGroup(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s := g.Settled(ctx); !s.Done() || s.Members != tc.nodes {
				t.Fatalf("after NewGroup: %+v", s)
			}
			for _, n := range c.Nodes() {
				ms, err := n.Messenger.Members(g.Ref)
				if err != nil || len(ms) != tc.nodes {
					t.Fatalf("%s sees %d members (%v), want %d", n.ID, len(ms), err, tc.nodes)
				}
			}
			var last time.Duration
			for i := range 3 {
				msg, err := g.Send(ctx, c.Node(i), fmt.Appendf(nil, "hello %d", i))
				if err != nil {
					t.Fatal(err)
				}
				if last, err = g.WaitDelivered(ctx, msg.CID); err != nil {
					t.Fatal(err)
				}
				if d := g.Delivery(msg.CID); d.Reached != tc.nodes || d.Last != last {
					t.Fatalf("delivery %+v, want all %d", d, tc.nodes)
				}
			}
			if err := g.WaitSettled(ctx); err != nil {
				t.Fatal(err)
			}
			gs := g.Stats()
			if gs.Sent != 3 || gs.Deliveries != uint64(3*tc.nodes) || gs.Members != tc.nodes {
				t.Fatalf("group stats %+v", gs)
			}
			if ns := c.Node(0).Stats(); ns.Sent != 1 || ns.Delivered != 3 || ns.Network.Published == 0 {
				t.Fatalf("node stats %+v", ns)
			}
			if err := g.Remove(ctx, c.Node(0), c.Node(tc.nodes-1)); err != nil {
				t.Fatal(err)
			}
			msg, err := g.Send(ctx, c.Node(1), []byte("after removal"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.WaitDelivered(ctx, msg.CID); err != nil {
				t.Fatal(err)
			}
			if err := g.WaitSettled(ctx); err != nil {
				t.Fatal(err)
			}
			ms, _ := c.Node(1).Messenger.Members(g.Ref)
			if len(ms) != tc.nodes-1 {
				t.Fatalf("after removal %d members, want %d", len(ms), tc.nodes-1)
			}
			for _, want := range []string{"nodes", "invite", "join", "settle"} {
				found := false
				for _, p := range phases {
					found = found || p == want
				}
				if !found {
					t.Errorf("no progress for phase %q (got %v)", want, phases)
				}
			}
		})
	}
}

func TestCloseIsIdempotentAndRefusesAfter(t *testing.T) {
	c, err := sim.New(t.Context(), sim.Config{Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewGroup(t.Context(), nil); err == nil {
		t.Fatal("NewGroup after Close succeeded")
	}
	if _, err := c.AddNodes(t.Context(), 1); err == nil {
		t.Fatal("AddNodes after Close succeeded")
	}
}
