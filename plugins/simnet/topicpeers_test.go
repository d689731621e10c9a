package simnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// TestTopicPeerEvents: a peer is on a topic while it is connected and
// subscribed; joins and leaves follow subscriptions and connections.
func TestTopicPeerEvents(t *testing.T) {
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	a, _ := sn.AddNode("a")
	b, _ := sn.AddNode("b")
	c, _ := sn.AddNode("c")
	sn.ConnectAll()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := c.Subscribe(ctx, "t"); err != nil { // c is on t from the start
		t.Fatal(err)
	}
	evs, err := a.TopicPeerEvents(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	next := func(want sdk.TopicPeerEvent) {
		t.Helper()
		select {
		case ev := <-evs:
			if ev != want {
				t.Fatalf("event %+v, want %+v", ev, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event within 10s, want %+v", want)
		}
	}
	next(sdk.TopicPeerEvent{Peer: "c", Joined: true})
	bctx, bcancel := context.WithCancel(ctx)
	if _, err := b.Subscribe(bctx, "other"); err != nil { // not t: no event
		t.Fatal(err)
	}
	if _, err := b.Subscribe(bctx, "t"); err != nil {
		t.Fatal(err)
	}
	next(sdk.TopicPeerEvent{Peer: "b", Joined: true})
	bcancel()
	next(sdk.TopicPeerEvent{Peer: "b", Joined: false})
	sn.Disconnect("a", "c")
	next(sdk.TopicPeerEvent{Peer: "c", Joined: false})
	sn.ConnectAll()
	next(sdk.TopicPeerEvent{Peer: "c", Joined: true})
}
