package simnet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

func nodes(t testing.TB, n *simnet.Network, ids ...string) []*simnet.Node {
	t.Helper()
	out := make([]*simnet.Node, len(ids))
	for i, id := range ids {
		nd, err := n.AddNode(id)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = nd
	}
	return out
}

func block(data []byte) sdk.Block {
	m, _ := mh.Sum(data, mh.SHA2_256, -1)
	return sdk.Block{CID: cid.NewCidV1(cid.DagCBOR, m).Bytes(), Data: data}
}

func recv(t testing.TB, ch <-chan sdk.PubsubMessage) sdk.PubsubMessage {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
	return sdk.PubsubMessage{}
}

func event(t testing.TB, ch <-chan sdk.PeerEvent) sdk.PeerEvent {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no peer event within 5s")
	}
	return sdk.PeerEvent{}
}

func TestPubsubInOrderWithLatency(t *testing.T) {
	n := simnet.New(simnet.WithDefaultLink(simnet.Link{Latency: time.Millisecond, Jitter: 2 * time.Millisecond}))
	defer n.Close()
	ns := nodes(t, n, "a", "b")
	n.ConnectAll()
	ctx := t.Context()
	sub, err := ns[1].Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	own, _ := ns[0].Subscribe(ctx, "t")
	for i := range 50 {
		if err := ns[0].Publish(ctx, "t", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		m := recv(t, sub)
		if m.From != "a" || m.Topic != "t" || !bytes.Equal(m.Data, []byte{byte(i)}) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	select {
	case m := <-own:
		t.Fatalf("publisher received its own message %+v", m)
	default:
	}
}

// TestLossIsSeeded: the same seed loses the same messages.
func TestLossIsSeeded(t *testing.T) {
	run := func(seed uint64) []byte {
		n := simnet.New(simnet.WithSeed(seed), simnet.WithDefaultLink(simnet.Link{Loss: 0.3}))
		defer n.Close()
		ns := nodes(t, n, "a", "b")
		n.ConnectAll()
		sub, _ := ns[1].Subscribe(t.Context(), "t")
		for i := range 200 {
			_ = ns[0].Publish(t.Context(), "t", []byte{byte(i)})
		}
		_ = ns[0].Publish(t.Context(), "done", nil)
		var got []byte
		for {
			if n.Stats().Delivered+n.Stats().Lost >= 200 {
				break
			}
			time.Sleep(time.Millisecond) // polling a counter, not synchronising on time
		}
		for len(got) < int(n.Stats().Delivered) {
			got = append(got, recv(t, sub).Data[0])
		}
		return got
	}
	a1, a2, b := run(1), run(1), run(2)
	if !bytes.Equal(a1, a2) {
		t.Fatal("the same seed lost different messages")
	}
	if bytes.Equal(a1, b) {
		t.Fatal("different seeds lost the same messages")
	}
	if len(a1) < 100 || len(a1) > 180 {
		t.Fatalf("%d of 200 delivered with 30%% loss", len(a1))
	}
}

func TestPartitionHealAndPeerEvents(t *testing.T) {
	n := simnet.New()
	defer n.Close()
	ns := nodes(t, n, "a", "b", "c")
	ev, err := ns[0].PeerEvents(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n.ConnectAll()
	seen := map[string]bool{}
	for range 2 {
		e := event(t, ev)
		if !e.Connected {
			t.Fatalf("event %+v", e)
		}
		seen[e.Peer] = true
	}
	if !seen["b"] || !seen["c"] {
		t.Fatalf("connect events: %v", seen)
	}
	n.Partition([]string{"a"})
	for range 2 {
		if e := event(t, ev); e.Connected {
			t.Fatalf("event %+v during partition", e)
		}
	}
	peers, _ := ns[1].Peers(t.Context())
	if len(peers) != 1 || peers[0].ID != "c" {
		t.Fatalf("b's peers during partition: %v", peers)
	}
	if _, err := ns[0].Request(t.Context(), "b", "/p", nil); !errors.Is(err, simnet.ErrUnreachable) {
		t.Fatalf("request across partition: %v", err)
	}
	if err := ns[0].Connect(t.Context(), sdk.PeerInfo{ID: "b"}); !errors.Is(err, simnet.ErrUnreachable) {
		t.Fatalf("connect across partition: %v", err)
	}
	n.Heal()
	for range 2 {
		if e := event(t, ev); !e.Connected {
			t.Fatalf("event %+v after heal", e)
		}
	}
}

func TestBlocksFetchedFromPeers(t *testing.T) {
	n := simnet.New(simnet.WithDefaultLink(simnet.Link{Latency: time.Millisecond}))
	defer n.Close()
	ns := nodes(t, n, "a", "b", "c")
	n.ConnectAll()
	ctx := t.Context()
	blk := block([]byte("hello"))
	if err := ns[0].PutBlocks(ctx, []sdk.Block{blk}); err != nil {
		t.Fatal(err)
	}
	if err := ns[0].PutBlocks(ctx, []sdk.Block{{CID: blk.CID, Data: []byte("forged")}}); !errors.Is(err, simnet.ErrHashMismatch) {
		t.Fatalf("put forged block: %v", err)
	}
	for b, err := range ns[1].GetBlocks(ctx, [][]byte{blk.CID}) {
		if err != nil || !bytes.Equal(b.Data, blk.Data) {
			t.Fatalf("get: %v %q", err, b.Data)
		}
	}
	// b now serves it too: c gets it with a cut off.
	n.Partition([]string{"b", "c"})
	for b, err := range ns[2].GetBlocks(ctx, [][]byte{blk.CID}) {
		if err != nil || !bytes.Equal(b.Data, blk.Data) {
			t.Fatalf("get from b: %v", err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	missing := block([]byte("nobody"))
	for _, err := range ns[2].GetBlocks(short, [][]byte{missing.CID}) {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("missing block: %v", err)
		}
	}
	provs, _ := ns[2].FindProviders(ctx, blk.CID)
	var got []string
	for p := range provs {
		got = append(got, p.ID)
	}
	if fmt.Sprint(got) != "[b]" {
		t.Fatalf("providers %v", got)
	}
}

func TestDirectRequestsAndBlocking(t *testing.T) {
	n := simnet.New()
	defer n.Close()
	ns := nodes(t, n, "a", "b", "c")
	n.ConnectAll()
	ctx := t.Context()
	_ = ns[1].HandleRequests("/echo", func(_ context.Context, from string, req []byte) ([]byte, error) {
		return append([]byte(from+":"), req...), nil
	})
	resp, err := ns[0].Request(ctx, "b", "/echo", []byte("hi"))
	if err != nil || string(resp) != "a:hi" {
		t.Fatalf("request: %q %v", resp, err)
	}
	if _, err := ns[0].Request(ctx, "b", "/other", nil); !errors.Is(err, simnet.ErrNoHandler) {
		t.Fatalf("unknown protocol: %v", err)
	}
	if err := ns[1].BlockPeer(ctx, "a", "test", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := ns[0].Request(ctx, "b", "/echo", nil); !errors.Is(err, simnet.ErrUnreachable) {
		t.Fatalf("request to a peer that blocked us: %v", err)
	}
	if _, err := ns[2].Request(ctx, "b", "/echo", nil); err != nil {
		t.Fatalf("a third peer is affected: %v", err)
	}
	if !ns[1].Blocked("a") || ns[1].Blocked("c") {
		t.Fatal("Blocked reports the wrong peers")
	}
}

func TestStopStartAndConfigure(t *testing.T) {
	n := simnet.New()
	defer n.Close()
	ns := nodes(t, n, "a", "b")
	n.ConnectAll()
	ctx := t.Context()
	if err := ns[1].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ns[1].Stop(ctx); err != nil {
		t.Fatal("second Stop:", err)
	}
	if peers, _ := ns[0].Peers(ctx); len(peers) != 0 {
		t.Fatalf("peers of a with b down: %v", peers)
	}
	if err := ns[1].Start(ctx); err != nil {
		t.Fatal(err)
	}
	if peers, _ := ns[0].Peers(ctx); len(peers) != 1 {
		t.Fatalf("peers of a with b up: %v", peers)
	}
	diags, err := ns[0].Configure(ctx, map[string]any{"bogus": 1})
	if err != nil || len(diags) != 1 || diags[0].Key != "bogus" {
		t.Fatalf("configure: %v %v", diags, err)
	}
	if _, err := n.AddNode("a"); !errors.Is(err, simnet.ErrDuplicateNode) {
		t.Fatalf("duplicate node: %v", err)
	}
}

// Content routing reaches providers without a connection (like a DHT), but
// not across a partition, nor to a node that is down or blocked.
func TestProvideFindProviders(t *testing.T) {
	m, _ := mh.Sum([]byte("rendezvous"), mh.SHA2_256, -1)
	c := cid.NewCidV1(cid.Raw, m)
	tests := []struct {
		name  string
		setup func(n *simnet.Network, seeker, provider *simnet.Node)
		found bool
	}{
		{"no connection needed", func(*simnet.Network, *simnet.Node, *simnet.Node) {}, true},
		{"across a partition", func(n *simnet.Network, _, _ *simnet.Node) {
			n.Partition([]string{"seeker"}, []string{"provider"})
		}, false},
		{"provider down", func(_ *simnet.Network, _, p *simnet.Node) {
			if err := p.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"provider blocked", func(_ *simnet.Network, s, _ *simnet.Node) {
			if err := s.BlockPeer(context.Background(), "provider", "test", time.Hour); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := simnet.New()
			t.Cleanup(func() { n.Close() })
			ns := nodes(t, n, "seeker", "provider", "bystander")
			if err := ns[1].Provide(context.Background(), c.Bytes()); err != nil {
				t.Fatal(err)
			}
			tt.setup(n, ns[0], ns[1])
			ch, err := ns[0].FindProviders(context.Background(), c.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for p := range ch {
				got = append(got, p.ID)
			}
			if found := len(got) == 1 && got[0] == "provider"; found != tt.found || (!tt.found && len(got) != 0) {
				t.Fatalf("providers = %v, want provider found = %v", got, tt.found)
			}
		})
	}
}
