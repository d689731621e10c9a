package replication_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// scoringNode is a simnet node that records the application scores the
// replicator gives peers (sdk.PeerScorer).
type scoringNode struct {
	*simnet.Node
	mu     sync.Mutex
	scores map[string]float64
}

var _ sdk.PeerScorer = (*scoringNode)(nil)

func (n *scoringNode) ScorePeer(_ context.Context, peer string, delta float64, _ string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.scores[peer] += delta
	return nil
}

func (n *scoringNode) score(peer string) float64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.scores[peer]
}

// TestFlooderPaysHonestPeerDoesNot: a peer holding the key floods
// well-formed announcements of heads nobody has. Past its head fetch
// budget each one costs it application score, down to where the network
// cuts it off (-160 by default); the heads it named are given up and
// counted, not left missing; an honest writer meanwhile loses nothing and
// its entries arrive.
func TestFlooderPaysHonestPeerDoesNot(t *testing.T) {
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	wk := newKey(t)
	access := log.AllowWriters(wk.Public().(ed25519.PublicKey))
	na, _ := sn.AddNode("a")
	a := startPeer(t, "a", na, wk, access, fastOpts()...)
	nv, _ := sn.AddNode("victim")
	sv := &scoringNode{Node: nv, scores: map[string]float64{}}
	victim := startPeer(t, "victim", sv, newKey(t), access,
		fastOpts(replication.WithGiveUpAfter(500*time.Millisecond))...)
	evil := evilPeer(t, sn)
	topic := testKeys(t).Topic
	for i := range 400 {
		b := make([]byte, 64)
		rand.Read(b)
		if err := evil.Publish(context.Background(), topic, announce(t, topic, []cid.Cid{cidOf(b)}, nil)); err != nil {
			t.Fatal(err)
		}
		if i == 200 {
			appendN(t, a, 3, "honest")
		}
	}
	waitFor(t, 10*time.Second, func() string { return "the flooder's score to fall" }, func() bool {
		return sv.score("evil") <= -160
	})
	waitFor(t, 20*time.Second, lens([]*peerNode{a, victim}), func() bool { return victim.log.Len() == 3 })
	waitFor(t, 20*time.Second, func() string {
		st := victim.rep.Status().Logs[0]
		return fmt.Sprintf("the bogus heads to be given up: %d missing, %d given up", len(st.Missing), st.GivenUp)
	}, func() bool {
		st := victim.rep.Status().Logs[0]
		return st.GivenUp > 0 && len(st.Missing) == 0
	})
	if s := sv.score("a"); s < 0 {
		t.Fatalf("the honest writer lost score: %v", s)
	}
}
