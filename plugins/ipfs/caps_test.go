package ipfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

func TestPeerEventsReportConnectAndDisconnect(t *testing.T) {
	a := startNetwork(t, nil)
	b := startNetwork(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events, err := a.PeerEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, b, a)
	bID := b.PeerID()
	want := func(connected bool) {
		t.Helper()
		for {
			select {
			case e := <-events:
				if e.Peer == bID && e.Connected == connected {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no event connected=%v for %s", connected, bID)
			}
		}
	}
	want(true)
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want(false)
}

func TestDirectRequests(t *testing.T) {
	a := startNetwork(t, nil)
	b := startNetwork(t, nil)
	connect(t, a, b)
	const proto = "/skein/test/echo/1"
	if err := b.HandleRequests(proto, func(_ context.Context, from string, req []byte) ([]byte, error) {
		if from != a.PeerID() {
			return nil, fmt.Errorf("from %s", from)
		}
		if string(req) == "refuse" {
			return nil, errors.New("refused")
		}
		return append([]byte("echo:"), req...), nil
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     []byte
		want    string
		wantErr bool
	}{
		{"small", []byte("hi"), "echo:hi", false},
		{"empty", nil, "echo:", false},
		{"large", bytes.Repeat([]byte("x"), 1<<20), "echo:" + strings.Repeat("x", 1<<20), false},
		{"handler refuses", []byte("refuse"), "", true},
		{"too large", make([]byte, MaxDirectMessage+1), "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, err := a.Request(ctx, b.PeerID(), proto, tc.req)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %d bytes", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
	t.Run("unknown protocol", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := a.Request(ctx, b.PeerID(), "/skein/test/none/1", []byte("x")); err == nil {
			t.Fatal("a request on an unhandled protocol succeeded")
		}
	})
}

func TestBlockedPeerIsCutOffAndRefused(t *testing.T) {
	a := startNetwork(t, nil)
	b := startNetwork(t, nil)
	c := startNetwork(t, nil)
	connect(t, b, a)
	connect(t, c, a)
	if err := a.BlockPeer(context.Background(), b.PeerID(), "sent garbage", time.Hour); err != nil {
		t.Fatal(err)
	}
	peers, err := a.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.ID == b.PeerID() {
			t.Fatal("blocked peer still connected")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Connect(ctx, sdk.PeerInfo{ID: a.PeerID(), Addrs: a.Addrs()}); err == nil {
		waitFor(t, "a to drop b's new connection", func() bool {
			return len(a.Host().Network().ConnsToPeer(b.Host().ID())) == 0
		})
	}
	if err := a.Connect(ctx, sdk.PeerInfo{ID: b.PeerID(), Addrs: b.Addrs()}); err == nil {
		t.Fatal("a dialled a peer it blocked")
	}
	// The other peer is unaffected.
	if got := a.Host().Network().Connectedness(c.Host().ID()); got.String() != "Connected" {
		t.Fatalf("unrelated peer affected: %v", got)
	}
}

func TestGaterBlockExpires(t *testing.T) {
	g := newGater()
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	a := startNetwork(t, nil)
	id := a.Host().ID()
	g.block(id, now.Add(time.Minute))
	if g.allowed(id) {
		t.Fatal("blocked peer allowed")
	}
	now = now.Add(2 * time.Minute)
	if !g.allowed(id) {
		t.Fatal("block did not expire")
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		reserved := 0
		b, err := readFrame(bytes.NewReader(data), func(n int) error { reserved += n; return nil })
		// What is held follows what arrived: at most twice the body read
		// (the buffer doubles), at least the first growth step.
		if reserved > max(2*len(data), frameGrowth) {
			t.Fatalf("reserved %d bytes for %d bytes of input", reserved, len(data))
		}
		if err != nil {
			return
		}
		// Non-minimal length prefixes are accepted; the body must survive a
		// write and a second read unchanged.
		var buf bytes.Buffer
		if err := writeFrame(&buf, b); err != nil {
			t.Fatal(err)
		}
		again, err := readFrame(&buf, func(int) error { return nil })
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("frame does not round-trip: %v", err)
		}
	})
}

// TestTopicPeerEventsFollowGossipsub: a peer subscribing to a topic is
// reported as joined (one already on it first), and as gone when its
// subscription ends; the stream ends with its context.
func TestTopicPeerEventsFollowGossipsub(t *testing.T) {
	generic := map[string]any{"pubsub_validation": PubsubValidationNone}
	a := startNetwork(t, generic)
	b := startNetwork(t, generic)
	c := startNetwork(t, generic)
	connect(t, a, b)
	connect(t, a, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "skein/test/joins"
	if _, err := a.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	// Wait until a knows b is on the topic, so that b is reported first.
	waitFor(t, "a to learn b's subscription", func() bool {
		return slices.Contains(a.ps.ListPeers(topic), b.host.ID())
	})
	evs, err := a.TopicPeerEvents(ctx, topic)
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
		case <-ctx.Done():
			t.Fatalf("no event, want %+v", want)
		}
	}
	next(sdk.TopicPeerEvent{Peer: b.PeerID(), Joined: true})
	cctx, ccancel := context.WithCancel(ctx)
	if _, err := c.Subscribe(cctx, topic); err != nil {
		t.Fatal(err)
	}
	next(sdk.TopicPeerEvent{Peer: c.PeerID(), Joined: true})
	ccancel()
	next(sdk.TopicPeerEvent{Peer: c.PeerID(), Joined: false})
	if _, err := a.TopicPeerEvents(ctx, ""); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Fatalf("empty topic: err = %v, want sdk.ErrInvalidArgument", err)
	}
}
