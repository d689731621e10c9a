package ipfs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/skein-p2p/skein/sdk"
)

func TestAppScoresBoundAndDecay(t *testing.T) {
	s := newAppScores(time.Minute)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	p := peer.ID("p")
	tests := []struct {
		name  string
		delta float64
		after time.Duration
		want  float64
	}{
		{"a penalty", -10, 0, -10},
		{"halved after a half-life", 0, time.Minute, -5},
		{"bounded below", -5000, 0, appScoreFloor},
		{"credit bounded above", 5000, 0, appScoreCeiling},
		{"credit decays too", 0, 2 * time.Minute, appScoreCeiling / 4.0},
	}
	for _, tc := range tests {
		now = now.Add(tc.after)
		got := s.get(p)
		if tc.delta != 0 {
			got = s.add(p, tc.delta)
		}
		if math.Abs(got-tc.want) > 1e-9 {
			t.Fatalf("%s: score %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestAppScoresForgetNearZeroFirst(t *testing.T) {
	s := newAppScores(time.Minute)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	for i := range appScoreMaxPeers {
		s.add(peer.ID(fmt.Sprint(i)), -float64(i+1))
	}
	s.add("newcomer", -50)
	if len(s.m) != appScoreMaxPeers {
		t.Fatalf("%d scores kept, want %d", len(s.m), appScoreMaxPeers)
	}
	if s.get("0") != 0 || s.get("newcomer") != -50 || s.get("1") != -2 || s.get(peer.ID(fmt.Sprint(appScoreMaxPeers-1))) != appScoreFloor {
		t.Fatal("the score nearest 0 was not the one forgotten")
	}
}

func TestScorePeerCutsOff(t *testing.T) {
	a := startNetwork(t, nil)
	b := startNetwork(t, nil)
	connect(t, a, b)
	ctx := context.Background()
	for _, bad := range []struct {
		peer  string
		delta float64
	}{{"not a peer id", -1}, {b.PeerID(), math.NaN()}, {b.PeerID(), math.Inf(-1)}} {
		if err := a.ScorePeer(ctx, bad.peer, bad.delta, "test"); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Fatalf("ScorePeer(%q, %v): err = %v, want ErrInvalidArgument", bad.peer, bad.delta, err)
		}
	}
	// Just above the threshold: connected.
	if err := a.ScorePeer(ctx, b.PeerID(), -150, "head nobody served"); err != nil {
		t.Fatal(err)
	}
	if a.Host().Network().Connectedness(b.Host().ID()) != network.Connected {
		t.Fatal("cut off above the disconnect threshold")
	}
	if err := a.ScorePeer(ctx, b.PeerID(), -20, "entry rejected"); err != nil {
		t.Fatal(err)
	}
	if _, blocked := a.gater.blockedUntil(b.Host().ID()); !blocked {
		t.Fatal("a peer below the disconnect threshold is not blocked")
	}
	waitFor(t, "the peer to be disconnected", func() bool {
		return a.Host().Network().Connectedness(b.Host().ID()) != network.Connected
	})
}

// TestFlooderIsPrunedThenCutOff is the network side of issue 8's flood: a
// member f that turned hostile floods the closed topic with announcements
// a's validator rejects. a forwards none of them (c, behind a, never sees
// one), prunes f from the topic's mesh after its first, and cuts it off
// (blocked, disconnected) once it floods; b's honest messages reach a and
// c throughout.
func TestFlooderIsPrunedThenCutOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, aTrace := startTraced(t, nil)
	b, _ := startTraced(t, nil)
	c, _ := startTraced(t, nil)
	f, _ := startTraced(t, nil)
	var rejected atomic.Int32
	if err := a.ValidateTopic(closedTopic, func(_ context.Context, _ string, data []byte) sdk.Verdict {
		if strings.HasPrefix(string(data), "bad") {
			rejected.Add(1)
			return sdk.VerdictReject
		}
		return sdk.VerdictAccept
	}); err != nil {
		t.Fatal(err)
	}
	subs := map[*Network]*collector{}
	for _, n := range []*Network{a, b, c, f} {
		if err := n.CloseTopic(ctx, closedTopic); err != nil {
			t.Fatal(err)
		}
		ch, err := n.Subscribe(ctx, closedTopic)
		if err != nil {
			t.Fatal(err)
		}
		subs[n] = collect(ch)
	}
	for _, x := range []*Network{b, c, f} {
		connect(t, x, a)
		for _, pair := range [][2]*Network{{a, x}, {x, a}} {
			if err := pair[0].AdmitPeer(ctx, closedTopic, pair[1].PeerID(), true); err != nil {
				t.Fatal(err)
			}
		}
	}
	fID := f.Host().ID()
	waitFor(t, "a to graft f", func() bool { return aTrace.grafted(closedTopic, fID) })
	// Honest traffic from b, all along.
	honest := func(tag string) {
		t.Helper()
		for i := 0; ; i++ {
			data := fmt.Sprintf("good %s %d", tag, i)
			if err := b.Publish(ctx, closedTopic, []byte(data)); err != nil {
				t.Fatal(err)
			}
			if waitUntil(500*time.Millisecond, func() bool { return subs[a].has(data) && subs[c].has(data) }) {
				return
			}
			if i == 30 {
				t.Fatalf("b's %s messages do not reach a and c", tag)
			}
		}
	}
	honest("before")

	// One rejected announcement: f's score goes below 0 and a prunes it.
	if err := f.Publish(ctx, closedTopic, []byte("bad 0")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to prune f from the mesh", func() bool { return aTrace.pruned(closedTopic, fID) })
	if a.Host().Network().Connectedness(fID) != network.Connected {
		t.Fatal("f cut off after one bad message, before the flood")
	}

	// The flood.
	flooding := make(chan struct{})
	sent := 0
	go func() {
		defer close(flooding)
		for i := 1; ctx.Err() == nil; i++ {
			if err := f.Publish(ctx, closedTopic, []byte(fmt.Sprintf("bad %d", i))); err != nil {
				return
			}
			sent = i
			if _, blocked := a.gater.blockedUntil(fID); blocked || i >= 20000 {
				return
			}
		}
	}()
	honest("during")
	waitFor(t, "a to cut f off", func() bool {
		_, blocked := a.gater.blockedUntil(fID)
		return blocked && a.Host().Network().Connectedness(fID) != network.Connected
	})
	<-flooding
	honest("after")
	t.Logf("f published %d bad announcements before it was cut off; a's validator rejected %d", sent, rejected.Load())
	for _, n := range []*Network{a, c} {
		for _, m := range subs[n].got {
			if strings.HasPrefix(string(m.Data), "bad") {
				t.Fatalf("a rejected announcement was delivered: %q", m.Data)
			}
		}
	}
}
