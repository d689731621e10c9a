package replication_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// A peer naming heads that nobody serves (a liar, or a peer that left
// before it was asked) stalls only the join of its own heads: the joins of
// other peers' heads go on meanwhile. The stall timeout is set far beyond
// the test's wait, so a join queue that runs one join at a time fails.
func TestUnservableHeadsDoNotStallOtherPeersJoins(t *testing.T) {
	topic, err := replication.Topic(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	bogus := func(t *testing.T) cid.Cid {
		b := make([]byte, 64)
		rand.Read(b)
		return cidOf(b)
	}
	tests := []struct {
		name string
		// lie makes evil name a head nobody has to victim.
		lie func(t *testing.T, evil *simnet.Node, victim *peerNode)
	}{
		{"in a pubsub announcement", func(t *testing.T, evil *simnet.Node, _ *peerNode) {
			if err := evil.Publish(context.Background(), topic, announce(t, topic, []cid.Cid{bogus(t)}, nil)); err != nil {
				t.Fatal(err)
			}
		}},
		{"in a head exchange", func(t *testing.T, evil *simnet.Node, victim *peerNode) {
			lieInHeadExchange(t, evil, bogus(t))
			if err := victim.rep.ExchangeHeads(context.Background(), "evil"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sn, peers := simCluster(t, 3, nil, fastOpts(replication.WithFetchTimeout(time.Hour))...)
			a, b := peers[0], peers[1]
			appendN(t, a, 3, "before")
			waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 3) })
			evil := evilPeer(t, sn)
			tc.lie(t, evil, b)
			waitFor(t, 10*time.Second, func() string { return "b fetching evil's head" }, func() bool {
				st := b.rep.Status()
				return len(st.Logs) == 1 && st.Logs[0].Fetching
			})
			appendN(t, a, 3, "while b fetches evil's head")
			waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 6) })
			requireSameOrder(t, peers)
		})
	}
}
