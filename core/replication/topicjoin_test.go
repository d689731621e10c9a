package replication_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// joinsNode is a simnet node whose topic join events the test sends.
type joinsNode struct {
	*simnet.Node
	joins chan sdk.TopicPeerEvent
}

func (n *joinsNode) TopicPeerEvents(ctx context.Context, topic string) (<-chan sdk.TopicPeerEvent, error) {
	return n.joins, nil
}

// noJoinsNode is a simnet node that reports no topic joins, like a network
// without sdk.TopicPeerNotifier.
type noJoinsNode struct{ *simnet.Node }

func (noJoinsNode) TopicPeerEvents(context.Context, string) (<-chan sdk.TopicPeerEvent, error) {
	return nil, sdk.ErrCapabilityNotServed
}

// TestHeadsExchangedWhenProvenPeerJoinsTopic: entries pubsub lost reach a
// peer as soon as the network reports that the writer joined the topic,
// with no re-exchange due, no anti-entropy and no announcement after them
// (nothing else would bring them); a join by a peer that proved nothing
// starts no exchange.
func TestHeadsExchangedWhenProvenPeerJoinsTopic(t *testing.T) {
	// One re-exchange right after connecting, then none: a is not fresh
	// when it writes (no exchange follows its announcements).
	opts := fastOpts(replication.WithAntiEntropyInterval(time.Hour), replication.WithReexchange(time.Millisecond))
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	ka, kb := newKey(t), newKey(t)
	access := log.AllowWriters(ka.Public().(ed25519.PublicKey), kb.Public().(ed25519.PublicKey))
	na, err := sn.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	nb, err := sn.AddNode("b")
	if err != nil {
		t.Fatal(err)
	}
	// c runs no replicator: it proves nothing.
	if _, err := sn.AddNode("c"); err != nil {
		t.Fatal(err)
	}
	bNet := &joinsNode{Node: nb, joins: make(chan sdk.TopicPeerEvent, 4)}
	a := startPeer(t, "a", na, ka, access, opts...)
	b := startPeer(t, "b", bNet, kb, access, opts...)
	peers := []*peerNode{a, b}
	sn.ConnectAll()
	appendN(t, a, 3, "before")
	waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 3) })
	// The entries may converge by pubsub before the exchanges on
	// connecting: wait until each side proved itself to the other, ran
	// its one re-exchange and has no exchange running. Until then a still
	// counts b as fresh (its appends below would be followed by an
	// exchange), or an exchange in flight could read a's heads after them.
	waitFor(t, 10*time.Second, func() string { return "the exchanges on connecting to end" }, func() bool {
		for _, x := range []struct {
			p    *peerNode
			peer string
		}{{a, "b"}, {b, "a"}} {
			if !replication.ProvenOnAnyTopic(x.p.rep, x.peer) || replication.ReexchangesDue(x.p.rep) != 0 || replication.ExchangesRunning(x.p.rep) != 0 {
				return false
			}
		}
		return true
	})

	sn.SetLink("a", "b", simnet.Link{Loss: 1})
	lost := sn.Stats().Lost
	appendN(t, a, 5, "lost")
	waitFor(t, 10*time.Second, func() string { return "the announcements to be lost" }, func() bool {
		return sn.Stats().Lost > lost
	})
	if b.log.Len() != 3 {
		t.Fatalf("b has %d entries before the join event, want 3: the test proves nothing", b.log.Len())
	}
	bNet.joins <- sdk.TopicPeerEvent{Peer: "c", Joined: true}
	bNet.joins <- sdk.TopicPeerEvent{Peer: "a", Joined: false}
	bNet.joins <- sdk.TopicPeerEvent{Peer: "a", Joined: true}
	waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 8) })
	if got := replication.TopicJoinExchanges(b.rep); got != 1 {
		t.Fatalf("%d head exchanges started by joins, want 1 (a's; c proved nothing, a leaving starts none)", got)
	}
}

// TestFreshPeerExchangeStopsOnceTopicJoined: a writer follows each
// announcement with a head exchange to a peer that connected just now,
// until the network reports that peer joined the topic (and it proved
// the topic): from then on the announcement reaches it by pubsub and no
// exchange follows; when the peer leaves the topic, exchanges resume.
// TestBurstOnFreshConnectionArrives covers a network that reports no
// joins (the exchange always follows).
func TestFreshPeerExchangeStopsOnceTopicJoined(t *testing.T) {
	// Fresh for an hour: every announcement is followed by an exchange
	// with b unless b is reached by pubsub.
	opts := fastOpts(replication.WithAntiEntropyInterval(time.Hour), replication.WithReexchange(time.Hour))
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	ka, kb := newKey(t), newKey(t)
	access := log.AllowWriters(ka.Public().(ed25519.PublicKey), kb.Public().(ed25519.PublicKey))
	na, err := sn.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	nb, err := sn.AddNode("b")
	if err != nil {
		t.Fatal(err)
	}
	aNet := &joinsNode{Node: na, joins: make(chan sdk.TopicPeerEvent, 4)}
	a := startPeer(t, "a", aNet, ka, access, opts...)
	b := startPeer(t, "b", nb, kb, access, opts...)
	peers := []*peerNode{a, b}
	sn.ConnectAll()

	appendN(t, a, 3, "not joined")
	waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 3) })
	if got := replication.FreshExchangesSkipped(a.rep); got != 0 {
		t.Fatalf("%d exchanges skipped before b joined the topic, want 0", got)
	}

	aNet.joins <- sdk.TopicPeerEvent{Peer: "b", Joined: true}
	// b proves the topic on connecting (perhaps after the entries arrived
	// by pubsub): wait for both.
	waitFor(t, 10*time.Second, func() string { return "b's join to be recorded and b proven" }, func() bool {
		return replication.ReachedByPubsub(a.rep, "b")
	})
	appendN(t, a, 5, "joined")
	waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 8) })
	skipped := replication.FreshExchangesSkipped(a.rep)
	if skipped == 0 {
		t.Fatal("no exchange skipped after b joined the topic and proved it")
	}

	aNet.joins <- sdk.TopicPeerEvent{Peer: "b", Joined: false}
	// The leave is handled in order before this join by c, which
	// proved nothing (it starts no exchange, and marks the leave as seen).
	aNet.joins <- sdk.TopicPeerEvent{Peer: "c", Joined: true}
	waitFor(t, 10*time.Second, func() string { return "the events to be read" }, func() bool {
		return len(aNet.joins) == 0
	})
	appendN(t, a, 2, "left")
	waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 10) })
	if got := replication.FreshExchangesSkipped(a.rep); got != skipped {
		t.Fatalf("%d exchanges skipped after b left the topic, want %d (none more)", got, skipped)
	}
}
