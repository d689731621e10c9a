package ipfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	"google.golang.org/protobuf/proto"

	"github.com/skein-p2p/skein/sdk"
)

const (
	closedTopic = "skein/test/closed"
	// openTopic is a topic every test peer may share: a message on it is
	// the barrier after which everything sent before it on the same
	// stream has arrived.
	openTopic = "skein/test/open"
)

// rawPeer is a hostile libp2p peer that speaks gossipsub by hand: it
// records every RPC a node writes to it and writes whatever it likes.
type rawPeer struct {
	h       host.Host
	mu      sync.Mutex
	got     []*pb.RPC
	inbound atomic.Int32 // pubsub streams the node opened to it
	out     network.Stream
}

func newRawPeer(t testing.TB) *rawPeer {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	r := &rawPeer{h: h}
	for _, pid := range pubsub.GossipSubDefaultProtocols {
		h.SetStreamHandler(pid, func(s network.Stream) {
			r.inbound.Add(1)
			rd := msgio.NewVarintReaderSize(s, 4<<20)
			for {
				b, err := rd.ReadMsg()
				if err != nil {
					return
				}
				var rpc pb.RPC
				if err := proto.Unmarshal(b, &rpc); err == nil {
					r.mu.Lock()
					r.got = append(r.got, &rpc)
					r.mu.Unlock()
				}
				rd.ReleaseMsg(b)
			}
		})
	}
	return r
}

func (r *rawPeer) connect(t testing.TB, n *Network) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.h.Connect(ctx, peer.AddrInfo{ID: n.Host().ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// send writes rpc on the peer's own pubsub stream to n.
func (r *rawPeer) send(t testing.TB, n *Network, rpc *pb.RPC) {
	t.Helper()
	if r.out == nil {
		s, err := r.h.NewStream(context.Background(), n.Host().ID(), pubsub.GossipSubID_v11)
		if err != nil {
			t.Fatal(err)
		}
		r.out = s
	}
	b, err := marshalFrame(rpc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.out.Write(b); err != nil {
		t.Fatalf("raw peer write: %v", err)
	}
}

func (r *rawPeer) received() []*pb.RPC {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// gotMessage reports whether a message with data on topic has arrived.
func (r *rawPeer) gotMessage(topic, data string) bool {
	for _, rpc := range r.received() {
		for _, m := range rpc.GetPublish() {
			if m.GetTopic() == topic && string(m.GetData()) == data {
				return true
			}
		}
	}
	return false
}

// mentions lists everything in rpcs that names topic or carries the ID of
// one of its messages (ids).
func mentions(rpcs []*pb.RPC, topic string, ids map[string]bool) []string {
	var out []string
	for _, rpc := range rpcs {
		for _, s := range rpc.GetSubscriptions() {
			if s.GetTopicid() == topic {
				out = append(out, fmt.Sprintf("subscription (subscribe=%v)", s.GetSubscribe()))
			}
		}
		for _, m := range rpc.GetPublish() {
			if m.GetTopic() == topic {
				out = append(out, fmt.Sprintf("message %q", m.GetData()))
			}
		}
		c := rpc.GetControl()
		for _, x := range c.GetIhave() {
			if x.GetTopicID() == topic {
				out = append(out, "IHAVE")
			}
			for _, id := range x.GetMessageIDs() {
				if ids[id] {
					out = append(out, "IHAVE of a message id")
				}
			}
		}
		for _, x := range c.GetGraft() {
			if x.GetTopicID() == topic {
				out = append(out, "GRAFT")
			}
		}
		for _, x := range c.GetPrune() {
			if x.GetTopicID() == topic {
				out = append(out, "PRUNE")
			}
		}
		for _, x := range c.GetIwant() {
			for _, id := range x.GetMessageIDs() {
				if ids[id] {
					out = append(out, "IWANT of a message id")
				}
			}
		}
		for _, x := range c.GetIdontwant() {
			for _, id := range x.GetMessageIDs() {
				if ids[id] {
					out = append(out, "IDONTWANT of a message id")
				}
			}
		}
	}
	return out
}

func messageID(topic, data string) string {
	return contentMessageID(&pb.Message{Topic: &topic, Data: []byte(data)})
}

func subOpts(topic string, sub bool) *pb.RPC_SubOpts {
	return &pb.RPC_SubOpts{Topicid: &topic, Subscribe: &sub}
}

// meshTracer records the mesh links a node makes (RawTracer).
type meshTracer struct {
	sendCounter
	mu     sync.Mutex
	grafts map[string][]peer.ID
	prunes map[string][]peer.ID
}

func newMeshTracer() *meshTracer {
	return &meshTracer{grafts: map[string][]peer.ID{}, prunes: map[string][]peer.ID{}}
}

func (m *meshTracer) Graft(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.grafts[topic] = append(m.grafts[topic], p)
}

func (m *meshTracer) Prune(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prunes[topic] = append(m.prunes[topic], p)
}

func (m *meshTracer) grafted(topic string, p peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.grafts[topic], p)
}

func (m *meshTracer) pruned(topic string, p peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.prunes[topic], p)
}

// startTraced starts a network whose gossipsub reports to a meshTracer.
func startTraced(t testing.TB, cfg map[string]any) (*Network, *meshTracer) {
	t.Helper()
	tr := newMeshTracer()
	n := New()
	n.psOpts = []pubsub.Option{pubsub.WithRawTracer(tr)}
	base := map[string]any{"listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false, "pubsub_validation": PubsubValidationNone}
	for k, v := range cfg {
		base[k] = v
	}
	diags, err := n.Configure(context.Background(), base)
	if err != nil || len(diags) > 0 {
		t.Fatalf("configure: %v %v", diags, err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n, tr
}

// recv waits for a message on ch with data want, skipping others.
func recv(t testing.TB, ch <-chan sdk.PubsubMessage, want string) sdk.PubsubMessage {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("subscription closed waiting for %q", want)
			}
			if string(m.Data) == want {
				return m
			}
		case <-timeout:
			t.Fatalf("no message %q within 15s", want)
		}
	}
}

// waitUntil polls cond for up to d.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
	return true
}

// collector keeps everything a subscription delivers.
type collector struct {
	mu  sync.Mutex
	got []sdk.PubsubMessage
}

func collect(ch <-chan sdk.PubsubMessage) *collector {
	c := &collector{}
	go func() {
		for m := range ch {
			c.mu.Lock()
			c.got = append(c.got, m)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) has(data string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.got, func(m sdk.PubsubMessage) bool { return string(m.Data) == data })
}

// TestStrangerLearnsNothingOfAClosedTopic: a hostile peer that knows a
// closed topic's name (a removed member, say) connects to a member and
// does everything gossipsub lets a peer do: it subscribes to the topic,
// GRAFTs it, sends IHAVE, asks with IWANT for messages it knows the IDs
// of, and publishes on it. It is never admitted. Whatever the member
// writes to it is recorded, and nothing names the topic or one of its
// messages; nothing it sent reaches the member's subscriber, validator or
// mesh. With the topic open (what every topic was before closed topics),
// the same peer reads the member's subscription in its hello and the
// group's messages: the "leaks" case shows the test sees them.
func TestStrangerLearnsNothingOfAClosedTopic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		closed bool
	}{{"closed", true}, {"open (leaks)", false}} {
		t.Run(tc.name, func(t *testing.T) {
			a, aTrace := startTraced(t, nil)
			b, _ := startTraced(t, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var validated atomic.Int32
			for _, n := range []*Network{a, b} {
				if tc.closed {
					if err := n.CloseTopic(ctx, closedTopic); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := a.ValidateTopic(closedTopic, func(_ context.Context, from string, data []byte) sdk.Verdict {
				validated.Add(1)
				if tc.closed && from != b.PeerID() {
					t.Errorf("validator saw a message from %s (%q), not the member", from, data)
				}
				return sdk.VerdictAccept
			}); err != nil {
				t.Fatal(err)
			}
			aMsgs, err := a.Subscribe(ctx, closedTopic)
			if err != nil {
				t.Fatal(err)
			}
			aGot := collect(aMsgs)
			aOpen, err := a.Subscribe(ctx, openTopic)
			if err != nil {
				t.Fatal(err)
			}
			bMsgs, err := b.Subscribe(ctx, closedTopic)
			if err != nil {
				t.Fatal(err)
			}
			connect(t, a, b)
			if tc.closed {
				for _, x := range [][2]*Network{{a, b}, {b, a}} {
					if err := x[0].AdmitPeer(ctx, closedTopic, x[1].PeerID(), true); err != nil {
						t.Fatal(err)
					}
				}
			}

			stranger := newRawPeer(t)
			stranger.connect(t, a)
			waitFor(t, "the member to open its pubsub stream to the stranger", func() bool { return stranger.inbound.Load() > 0 })
			ids := map[string]bool{}
			publish := func(n *Network, data string) {
				t.Helper()
				ids[messageID(closedTopic, data)] = true
				if err := n.Publish(ctx, closedTopic, []byte(data)); err != nil {
					t.Fatal(err)
				}
			}
			// The members talk; the member has something in its cache.
			publish(b, "from b 1")
			waitFor(t, "b's first message at a", func() bool { return aGot.has("from b 1") })
			publish(a, "from a 1")
			recv(t, bMsgs, "from a 1")

			// The stranger does all it can.
			stranger.send(t, a, &pb.RPC{Subscriptions: []*pb.RPC_SubOpts{subOpts(closedTopic, true), subOpts(openTopic, true)}})
			stranger.send(t, a, &pb.RPC{Control: &pb.ControlMessage{
				Graft: []*pb.ControlGraft{{TopicID: proto.String(closedTopic)}},
				Ihave: []*pb.ControlIHave{{TopicID: proto.String(closedTopic), MessageIDs: []string{messageID(closedTopic, "stranger's gossip")}}},
				Iwant: []*pb.ControlIWant{{MessageIDs: []string{messageID(closedTopic, "from b 1"), messageID(closedTopic, "from a 1")}}},
			}})
			stranger.send(t, a, &pb.RPC{Publish: []*pb.Message{{Topic: proto.String(closedTopic), Data: []byte("from the stranger")}}})
			// After its subscription, the member publishes again (flood
			// publishing reaches every peer subscribed).
			publish(a, "from a 2")
			recv(t, bMsgs, "from a 2")
			publish(b, "from b 2")
			waitFor(t, "b's second message at a", func() bool { return aGot.has("from b 2") })
			// Barrier: the stranger's message on the open topic reaches a
			// after everything it sent before; a's answer on the open
			// topic reaches it after everything a wrote before.
			stranger.send(t, a, &pb.RPC{Publish: []*pb.Message{{Topic: proto.String(openTopic), Data: []byte("stranger barrier")}}})
			recv(t, aOpen, "stranger barrier")
			if err := a.Publish(ctx, openTopic, []byte("member barrier")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the member's barrier at the stranger", func() bool { return stranger.gotMessage(openTopic, "member barrier") })

			seen := mentions(stranger.received(), closedTopic, ids)
			strangerID := stranger.h.ID()
			t.Logf("the stranger received %d RPCs from the member; about the topic: %v", len(stranger.received()), seen)
			if !tc.closed {
				// What was leaking: the subscription and the messages.
				sawMessage := slices.ContainsFunc(seen, func(s string) bool { return strings.HasPrefix(s, "message ") })
				if !slices.Contains(seen, "subscription (subscribe=true)") || !sawMessage {
					t.Fatalf("open topic: the stranger should see the subscription and the messages, saw %v", seen)
				}
				waitFor(t, "the stranger's message delivered on an open topic", func() bool { return aGot.has("from the stranger") })
				return
			}
			if len(seen) > 0 {
				t.Fatalf("the stranger learnt of the closed topic: %v", seen)
			}
			if a.unsolicited.Load() == 0 {
				t.Fatal("the stranger's message was not dropped as unsolicited")
			}
			if aGot.has("from the stranger") {
				t.Fatal("the stranger's message was delivered")
			}
			if got := validated.Load(); got != 2 {
				t.Fatalf("the validator ran %d times, want 2 (b's messages only)", got)
			}
			if aTrace.grafted(closedTopic, strangerID) {
				t.Fatal("the member grafted the stranger onto the closed topic's mesh")
			}
			if !a.gate.hidden(strangerID, closedTopic) {
				t.Fatal("the stranger is admitted")
			}
		})
	}
}

// plainPubsubPeer is a plain go-libp2p host with gossipsub configured as
// the plugin's (unsigned messages, content IDs), and nothing of Skein.
type plainPubsubPeer struct {
	h  host.Host
	ps *pubsub.PubSub
}

func newPlainPubsubPeer(t testing.TB) *plainPubsubPeer {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(), pubsub.WithMessageIdFn(contentMessageID))
	if err != nil {
		t.Fatal(err)
	}
	return &plainPubsubPeer{h: h, ps: ps}
}

func (p *plainPubsubPeer) connect(t testing.TB, n *Network) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.h.Connect(ctx, peer.AddrInfo{ID: n.Host().ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// subscribe joins topic and collects what arrives on it.
func (p *plainPubsubPeer) subscribe(t testing.TB, topic string) (*pubsub.Topic, *collector) {
	t.Helper()
	tp, err := p.ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	ch := make(chan sdk.PubsubMessage, 64)
	go func() {
		defer close(ch)
		for {
			m, err := sub.Next(context.Background())
			if err != nil {
				return
			}
			ch <- sdk.PubsubMessage{Topic: topic, From: m.ReceivedFrom.String(), Data: m.Data}
		}
	}()
	return tp, collect(ch)
}

// TestAdmissionOpensAndEvictionCloses: a plain go-libp2p + gossipsub peer
// subscribed to a closed topic gets nothing until admitted, everything
// while admitted (both ways), nothing again once evicted, and admission
// ends with its last connection: after reconnecting it is a stranger
// again.
func TestAdmissionOpensAndEvictionCloses(t *testing.T) {
	a, _ := startTraced(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a.CloseTopic(ctx, closedTopic); err != nil {
		t.Fatal(err)
	}
	aMsgs, err := a.Subscribe(ctx, closedTopic)
	if err != nil {
		t.Fatal(err)
	}
	aGot := collect(aMsgs)
	if _, err := a.Subscribe(ctx, openTopic); err != nil {
		t.Fatal(err)
	}
	p := newPlainPubsubPeer(t)
	pTopic, pGot := p.subscribe(t, closedTopic)
	_, pOpen := p.subscribe(t, openTopic)
	p.connect(t, a)
	pid := p.h.ID()
	// barrier: a's open-topic message reaches p after everything a wrote
	// to p before it.
	n := 0
	barrier := func() {
		t.Helper()
		n++
		data := fmt.Sprintf("barrier %d", n)
		waitFor(t, "p on a's open topic", func() bool { return slices.Contains(a.ps.ListPeers(openTopic), pid) })
		if err := a.Publish(ctx, openTopic, []byte(data)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, data+" at p", func() bool { return pOpen.has(data) })
	}

	if err := a.Publish(ctx, closedTopic, []byte("before admission")); err != nil {
		t.Fatal(err)
	}
	barrier()
	if pGot.has("before admission") {
		t.Fatal("a message of the closed topic reached a peer not admitted")
	}

	if err := a.AdmitPeer(ctx, closedTopic, pid.String(), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "p to learn that a subscribes", func() bool { return slices.Contains(pTopic.ListPeers(), a.Host().ID()) })
	if err := a.Publish(ctx, closedTopic, []byte("admitted")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's message at the admitted peer", func() bool { return pGot.has("admitted") })
	// The plain peer does not flood-publish: its message goes to its mesh,
	// which takes a heartbeat to form; it tries once a heartbeat.
	for i := 0; ; i++ {
		data := fmt.Sprintf("from the admitted peer %d", i)
		if err := pTopic.Publish(ctx, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if waitUntil(time.Second, func() bool { return aGot.has(data) }) {
			break
		}
		if i == 15 {
			t.Fatal("no message of the admitted peer reached a")
		}
	}

	if err := a.AdmitPeer(ctx, closedTopic, pid.String(), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "p to forget a on the topic", func() bool { return !slices.Contains(pTopic.ListPeers(), a.Host().ID()) })
	if err := a.Publish(ctx, closedTopic, []byte("after eviction")); err != nil {
		t.Fatal(err)
	}
	barrier()
	if pGot.has("after eviction") {
		t.Fatal("an evicted peer got a message of the closed topic")
	}

	// Admitted again, then its connection closes: it is a stranger when
	// it comes back.
	if err := a.AdmitPeer(ctx, closedTopic, pid.String(), true); err != nil {
		t.Fatal(err)
	}
	if a.gate.hidden(pid, closedTopic) {
		t.Fatal("re-admission did not take")
	}
	if err := p.h.Network().ClosePeer(a.Host().ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the admission to end with the connection", func() bool { return a.gate.hidden(pid, closedTopic) })
	p.connect(t, a)
	if err := a.Publish(ctx, closedTopic, []byte("after reconnecting")); err != nil {
		t.Fatal(err)
	}
	barrier()
	if pGot.has("after reconnecting") {
		t.Fatal("a peer that reconnected is still admitted")
	}
}

// TestMembersAdmittingEachOtherMesh: two members that admit each other
// in either order, some milliseconds apart, form a mesh on the closed
// topic: a message of a third member c (connected to b only) reaches a,
// which only b's mesh forwarding can bring it.
func TestMembersAdmittingEachOtherMesh(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delay  time.Duration
		aFirst bool
	}{{"a first", 20 * time.Millisecond, true}, {"b first", 20 * time.Millisecond, false}, {"together", 0, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			nets := make([]*Network, 3)
			var subs []*collector
			for i := range nets {
				nets[i], _ = startTraced(t, nil)
				if err := nets[i].CloseTopic(ctx, closedTopic); err != nil {
					t.Fatal(err)
				}
				ch, err := nets[i].Subscribe(ctx, closedTopic)
				if err != nil {
					t.Fatal(err)
				}
				subs = append(subs, collect(ch))
			}
			a, b, c := nets[0], nets[1], nets[2]
			connect(t, a, b)
			connect(t, b, c)
			admit := func(x, y *Network) {
				t.Helper()
				if err := x.AdmitPeer(ctx, closedTopic, y.PeerID(), true); err != nil {
					t.Fatal(err)
				}
			}
			admit(b, c)
			admit(c, b)
			first, second := [2]*Network{a, b}, [2]*Network{b, a}
			if !tc.aFirst {
				first, second = second, first
			}
			admit(first[0], first[1])
			time.Sleep(tc.delay) // the gap between the two admissions under test, not synchronisation
			admit(second[0], second[1])
			for i := 0; !subs[0].has(fmt.Sprintf("from c %d", i-1)) || i == 0; i++ {
				if i > 30 {
					t.Fatal("no message of c reached a through b's mesh within 30 tries")
				}
				if err := c.Publish(ctx, closedTopic, []byte(fmt.Sprintf("from c %d", i))); err != nil {
					t.Fatal(err)
				}
				time.Sleep(300 * time.Millisecond) // one try per 300 ms while the mesh forms
			}
		})
	}
}

func TestAdmitPeerErrors(t *testing.T) {
	a := startNetwork(t, nil)
	b := startNetwork(t, nil)
	ctx := context.Background()
	if err := a.CloseTopic(ctx, closedTopic); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		topic string
		peer  string
		is    error
	}{
		{"not connected", closedTopic, b.PeerID(), sdk.ErrNotFound},
		{"topic not closed", "skein/test/other", b.PeerID(), ErrTopicNotClosed},
		{"bad peer id", closedTopic, "not-a-peer", sdk.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.AdmitPeer(ctx, tc.topic, tc.peer, true); !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
	if err := a.CloseTopic(ctx, ""); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Fatalf("empty topic: err = %v", err)
	}
	// Evicting a peer that was never admitted is a no-op.
	if err := a.AdmitPeer(ctx, closedTopic, b.PeerID(), false); err != nil {
		t.Fatal(err)
	}
}

// TestUnsolicitedMessagesCutOffTheSender: a peer that sends messages on a
// closed topic it is not admitted to loses score per message and is cut
// off, exactly as one sending on a topic the node does not subscribe to
// at all: the same number of messages gets either cut off, so the penalty
// tells nothing of which topics are closed here.
func TestUnsolicitedMessagesCutOffTheSender(t *testing.T) {
	for _, topic := range []string{closedTopic, "skein/test/not-subscribed"} {
		t.Run(topic, func(t *testing.T) {
			a := startNetwork(t, map[string]any{"pubsub_validation": PubsubValidationNone})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := a.CloseTopic(ctx, closedTopic); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Subscribe(ctx, closedTopic); err != nil {
				t.Fatal(err)
			}
			r := newRawPeer(t)
			r.connect(t, a)
			batch := func(n int, tag string) *pb.RPC {
				rpc := &pb.RPC{}
				for i := range n {
					rpc.Publish = append(rpc.Publish, &pb.Message{Topic: proto.String(topic), Data: []byte(fmt.Sprintf("%s %d", tag, i))})
				}
				return rpc
			}
			limit := -defaultScoreConfig().DisconnectThreshold
			under := int(limit) - 10
			r.send(t, a, batch(under, "under"))
			waitFor(t, "the messages to be dropped", func() bool { return a.unsolicited.Load() == uint64(under) })
			if a.Host().Network().Connectedness(r.h.ID()) != network.Connected {
				t.Fatalf("cut off after %d unsolicited messages, below the threshold", under)
			}
			r.send(t, a, batch(20, "over"))
			waitFor(t, "the sender to be cut off", func() bool {
				_, blocked := a.gater.blockedUntil(r.h.ID())
				return blocked && a.Host().Network().Connectedness(r.h.ID()) != network.Connected
			})
		})
	}
}

// discardStream is a network.Stream whose writes go nowhere.
type discardStream struct {
	network.Stream
	n atomic.Int64
}

func (d *discardStream) Write(b []byte) (int, error) { d.n.Add(int64(len(b))); return len(b), nil }

// BenchmarkGatedStreamWrite measures what the closed-topic filter adds to
// each RPC gossipsub writes: a 1 KiB message on an open topic passed
// through ("open"), on a closed topic the peer is admitted to ("admitted"),
// and stripped for a peer that is not ("stripped"); "no closed topic" is
// the pass-through before any topic is closed.
func BenchmarkGatedStreamWrite(b *testing.B) {
	frame := func(topic string) []byte {
		f, err := marshalFrame(&pb.RPC{Publish: []*pb.Message{{Topic: proto.String(topic), Data: make([]byte, 1024)}}})
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	const p = peer.ID("peer")
	for _, tc := range []struct {
		name, topic    string
		closed, admits bool
	}{
		{"no closed topic", openTopic, false, false},
		{"open", openTopic, true, false},
		{"admitted", closedTopic, true, true},
		{"stripped", closedTopic, true, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := newTopicGate()
			if tc.closed {
				g.close(closedTopic)
			}
			if tc.admits {
				g.admitted[p] = &admission{topics: map[string]bool{closedTopic: true}, conns: map[network.Conn]bool{}}
			}
			s := &gatedStream{Stream: &discardStream{}, g: g, peer: p, withheld: map[string]*pb.RPC_SubOpts{}}
			f := frame(tc.topic)
			b.SetBytes(int64(len(f)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Write(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// recordStream is a network.Stream that keeps what is written to it.
type recordStream struct {
	network.Stream
	buf []byte
}

func (r *recordStream) Write(b []byte) (int, error) { r.buf = append(r.buf, b...); return len(b), nil }
func (r *recordStream) Reset() error                { return nil }

// FuzzGatedStreamWrite: whatever gossipsub writes, in whatever pieces,
// what reaches a peer not admitted to the closed topic is whole frames
// that never name it.
func FuzzGatedStreamWrite(f *testing.F) {
	for _, rpc := range []*pb.RPC{
		{Subscriptions: []*pb.RPC_SubOpts{subOpts(closedTopic, true), subOpts(openTopic, true)}},
		{Publish: []*pb.Message{{Topic: proto.String(closedTopic), Data: []byte("secret")}, {Topic: proto.String(openTopic), Data: []byte("x")}}},
		{Control: &pb.ControlMessage{
			Ihave: []*pb.ControlIHave{{TopicID: proto.String(closedTopic), MessageIDs: []string{"a"}}},
			Graft: []*pb.ControlGraft{{TopicID: proto.String(closedTopic)}, {TopicID: proto.String(openTopic)}},
			Prune: []*pb.ControlPrune{{TopicID: proto.String(closedTopic)}},
		}},
	} {
		b, err := marshalFrame(rpc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(len(b)/2))
	}
	f.Add([]byte{0x80}, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		g := newTopicGate()
		g.close(closedTopic)
		out := &recordStream{}
		s := &gatedStream{Stream: out, g: g, peer: "stranger", logger: discardLogger{}, withheld: map[string]*pb.RPC_SubOpts{}}
		at := min(int(cut), len(data))
		if _, err := s.Write(data[:at]); err == nil {
			_, _ = s.Write(data[at:])
		}
		for rest := out.buf; len(rest) > 0; {
			size, k := binary.Uvarint(rest)
			if k <= 0 || uint64(len(rest)-k) < size {
				t.Fatalf("a partial frame reached the peer: % x", rest)
			}
			var rpc pb.RPC
			if err := proto.Unmarshal(rest[k:k+int(size)], &rpc); err != nil {
				t.Fatalf("an undecodable frame reached the peer: %v", err)
			}
			if m := mentions([]*pb.RPC{&rpc}, closedTopic, nil); len(m) > 0 {
				t.Fatalf("the closed topic reached a peer not admitted: %v", m)
			}
			rest = rest[k+int(size):]
		}
	})
}

type discardLogger struct{}

func (discardLogger) Error(string, ...any) {}
