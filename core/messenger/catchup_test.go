package messenger_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/skein-p2p/skein/core/messenger"
)

// A member that was down catches up when it comes back, from the heads its
// peers hand it on start (head exchange), with no new write needed.
func TestOfflineCatchUp(t *testing.T) {
	ctx := context.Background()
	_, nodes, ref := threeMembers(t)
	c := nodes[2]
	if err := c.m.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := nodes[i%2].m.Send(ctx, ref, fmt.Appendf(nil, "while away %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "b has a's messages", func() bool { return len(bodies(t, nodes[1], ref)) == 5 })
	m, err := messenger.New(ctx, messenger.Config{Keystore: c.ks, Store: c.st, Network: c.net})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c.m = m
	waitFor(t, "c caught up", func() bool { return len(bodies(t, c, ref)) == 5 })
	if !slices.Equal(cids(t, c, ref), cids(t, nodes[0], ref)) {
		t.Fatal("c's order differs after catch-up")
	}
}

// Two sides with no path between them write; after the partition heals
// every member has every message in the same order.
func TestPartitionHeals(t *testing.T) {
	ctx := context.Background()
	sn, nodes, ref := threeMembers(t)
	sn.Partition([]string{"a", "b"}, []string{"c"})
	for i, n := range nodes {
		for j := range 3 {
			if _, err := n.m.Send(ctx, ref, fmt.Appendf(nil, "split %d/%d", i, j)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "a and b share their side", func() bool {
		return len(bodies(t, nodes[0], ref)) == 6 && len(bodies(t, nodes[1], ref)) == 6
	})
	if got := len(bodies(t, nodes[2], ref)); got != 3 {
		t.Fatalf("c sees %d messages across the partition, want its own 3", got)
	}
	sn.Heal()
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d converged", i), func() bool { return len(bodies(t, n, ref)) == 9 })
	}
	want := cids(t, nodes[0], ref)
	for i, n := range nodes[1:] {
		if !slices.Equal(cids(t, n, ref), want) {
			t.Fatalf("node %d order differs after heal", i+1)
		}
	}
}
