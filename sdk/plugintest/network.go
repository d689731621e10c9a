package plugintest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// TestNetworkTopics runs the conformance suite of the optional network
// capabilities sdk.TopicGate, sdk.TopicValidator and sdk.PeerScorer. open
// returns two started networks, not connected to each other, that can
// reach each other with Connect (b's PeerID and Addrs); each case opens a
// fresh pair.
//
// What it requires beyond the doc comments of the three interfaces:
// pubsub delivers a message of b's to a's subscriber within a few
// seconds of b publishing once both subscribe (the suite publishes again
// every 200 ms until one arrives), and a message a subscriber receives
// carries the PeerID of the peer that handed it over.
func TestNetworkTopics(t *testing.T, open func(t testing.TB) (a, b sdk.Network)) {
	t.Helper()
	cases := []struct {
		name string
		run  func(t *testing.T, a, b sdk.Network)
	}{
		{"ClosedTopicOnlyBetweenAdmittedPeers", testClosedTopic},
		{"AdmitPeerNotConnected", testAdmitNotConnected},
		{"EvictedPeerGetsNothing", testEviction},
		{"ValidatorJudgesEveryMessage", testValidator},
		{"ValidatorRemoved", testValidatorRemoved},
		{"ScorePeer", testScorePeer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t)
			tc.run(t, a, b)
		})
	}
}

// topicCaps asserts that n has the three capabilities.
func topicCaps(t testing.TB, n sdk.Network) (sdk.TopicGate, sdk.TopicValidator, sdk.PeerScorer) {
	t.Helper()
	tg, ok1 := n.(sdk.TopicGate)
	tv, ok2 := n.(sdk.TopicValidator)
	ps, ok3 := n.(sdk.PeerScorer)
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("network %T lacks TopicGate (%v), TopicValidator (%v) or PeerScorer (%v)", n, ok1, ok2, ok3)
	}
	return tg, tv, ps
}

func connectNetworks(t testing.TB, a, b sdk.Network) {
	t.Helper()
	if err := a.Connect(testCtx(t), sdk.PeerInfo{ID: b.PeerID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

// inbox keeps what a subscription delivers.
type inbox struct {
	mu  sync.Mutex
	got []sdk.PubsubMessage
}

func subscribe(t testing.TB, n sdk.Network, topic string) *inbox {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := n.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	in := &inbox{}
	go func() {
		for m := range ch {
			in.mu.Lock()
			in.got = append(in.got, m)
			in.mu.Unlock()
		}
	}()
	return in
}

// first returns the first message whose data starts with prefix.
func (in *inbox) first(prefix string) (sdk.PubsubMessage, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, m := range in.got {
		if strings.HasPrefix(string(m.Data), prefix) {
			return m, true
		}
	}
	return sdk.PubsubMessage{}, false
}

func (in *inbox) has(data string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.ContainsFunc(in.got, func(m sdk.PubsubMessage) bool { return string(m.Data) == data })
}

// publishUntil publishes prefix-0, prefix-1, ... from n every 200 ms until
// one arrives in in, and returns it.
func publishUntil(t testing.TB, n sdk.Network, topic, prefix string, in *inbox) sdk.PubsubMessage {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		if err := n.Publish(testCtx(t), topic, []byte(fmt.Sprintf("%s-%d", prefix, i))); err != nil {
			t.Fatalf("publish on %s: %v", topic, err)
		}
		next := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(next) {
			if m, ok := in.first(prefix + "-"); ok {
				return m
			}
			time.Sleep(10 * time.Millisecond) // polling a condition
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s message on %s arrived within 20s", prefix, topic)
		}
	}
}

func testClosedTopic(t *testing.T, a, b sdk.Network) {
	const topic = "plugintest/closed"
	ctx := testCtx(t)
	for _, n := range []sdk.Network{a, b} {
		tg, _, _ := topicCaps(t, n)
		if err := tg.CloseTopic(ctx, topic); err != nil {
			t.Fatalf("close topic: %v", err)
		}
		if err := tg.CloseTopic(ctx, topic); err != nil {
			t.Fatalf("close topic again (idempotent): %v", err)
		}
	}
	aIn, bIn := subscribe(t, a, topic), subscribe(t, b, topic)
	connectNetworks(t, a, b)
	// Neither has admitted the other: what they publish goes nowhere.
	for i := range 3 {
		for _, n := range []sdk.Network{a, b} {
			if err := n.Publish(ctx, topic, []byte(fmt.Sprintf("early-%d", i))); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
	}
	atg, _, _ := topicCaps(t, a)
	btg, _, _ := topicCaps(t, b)
	if err := atg.AdmitPeer(ctx, topic, b.PeerID(), true); err != nil {
		t.Fatalf("a admits b: %v", err)
	}
	if err := btg.AdmitPeer(ctx, topic, a.PeerID(), true); err != nil {
		t.Fatalf("b admits a: %v", err)
	}
	if m := publishUntil(t, b, topic, "from-b", aIn); m.From != b.PeerID() {
		t.Fatalf("message from %q, want b %q", m.From, b.PeerID())
	}
	publishUntil(t, a, topic, "from-a", bIn)
	for _, in := range []*inbox{aIn, bIn} {
		if m, ok := in.first("early-"); ok {
			t.Fatalf("a message published before admission arrived: %q", m.Data)
		}
	}
}

func testAdmitNotConnected(t *testing.T, a, b sdk.Network) {
	const topic = "plugintest/closed-unconnected"
	ctx := testCtx(t)
	tg, _, _ := topicCaps(t, a)
	if err := tg.CloseTopic(ctx, topic); err != nil {
		t.Fatalf("close topic: %v", err)
	}
	if err := tg.AdmitPeer(ctx, topic, b.PeerID(), true); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("admitting a peer not connected: err = %v, want sdk.ErrNotFound", err)
	}
	// Evicting a peer never admitted is harmless.
	if err := tg.AdmitPeer(ctx, topic, b.PeerID(), false); err != nil {
		t.Fatalf("evicting a peer never admitted: %v", err)
	}
}

func testEviction(t *testing.T, a, b sdk.Network) {
	const topic = "plugintest/closed-evict"
	ctx := testCtx(t)
	atg, _, _ := topicCaps(t, a)
	btg, _, _ := topicCaps(t, b)
	for _, tg := range []sdk.TopicGate{atg, btg} {
		if err := tg.CloseTopic(ctx, topic); err != nil {
			t.Fatalf("close topic: %v", err)
		}
	}
	// An open topic carries a marker: a sends its messages to b over the
	// one stream it writes to b, in order, so once b has the marker it has
	// whatever a sent it on the closed topic before.
	const open = "plugintest/open-beside-evict"
	subscribe(t, a, topic)
	bIn := subscribe(t, b, topic)
	subscribe(t, a, open)
	bOpen := subscribe(t, b, open)
	connectNetworks(t, a, b)
	admit := func(tg sdk.TopicGate, peer string, yes bool) {
		t.Helper()
		if err := tg.AdmitPeer(ctx, topic, peer, yes); err != nil {
			t.Fatalf("admit %v: %v", yes, err)
		}
	}
	admit(atg, b.PeerID(), true)
	admit(btg, a.PeerID(), true)
	publishUntil(t, a, topic, "admitted", bIn)
	admit(atg, b.PeerID(), false)
	for i := range 3 {
		if err := a.Publish(ctx, topic, []byte(fmt.Sprintf("evicted-%d", i))); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	publishUntil(t, a, open, "marker", bOpen)
	if m, ok := bIn.first("evicted-"); ok {
		t.Fatalf("an evicted peer received %q", m.Data)
	}
	// Admitted again, b gets the topic's messages again. (It may also get
	// those published while it was out, from gossip's message cache: the
	// contract is about what is sent while a peer is not admitted.)
	admit(atg, b.PeerID(), true)
	publishUntil(t, a, topic, "again", bIn)
}

// judgement records what a validator was asked and judges by prefix:
// "accept", "reject", anything else ignored.
type judgement struct {
	mu    sync.Mutex
	froms map[string]string // data -> from
}

func (j *judgement) validate(_ context.Context, from string, data []byte) sdk.Verdict {
	j.mu.Lock()
	j.froms[string(data)] = from
	j.mu.Unlock()
	switch {
	case strings.HasPrefix(string(data), "accept"):
		return sdk.VerdictAccept
	case strings.HasPrefix(string(data), "reject"):
		return sdk.VerdictReject
	}
	return sdk.VerdictIgnore
}

func (j *judgement) from(data string) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f, ok := j.froms[data]
	return f, ok
}

func testValidator(t *testing.T, a, b sdk.Network) {
	const topic = "plugintest/validated"
	ctx := testCtx(t)
	_, tv, _ := topicCaps(t, a)
	j := &judgement{froms: map[string]string{}}
	if err := tv.ValidateTopic(topic, j.validate); err != nil {
		t.Fatalf("validate topic: %v", err)
	}
	aIn := subscribe(t, a, topic)
	subscribe(t, b, topic)
	connectNetworks(t, a, b)
	for _, d := range []string{"ignore-me", "reject-me"} {
		if err := b.Publish(ctx, topic, []byte(d)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	publishUntil(t, b, topic, "accept", aIn)
	if err := a.Publish(ctx, topic, []byte("accept-own")); err != nil {
		t.Fatalf("own publish: %v", err)
	}
	if _, asked := j.from("accept-own"); asked {
		t.Fatal("the validator was asked about the node's own message")
	}
	for _, d := range []string{"ignore-me", "reject-me"} {
		if aIn.has(d) {
			t.Fatalf("%q was delivered", d)
		}
	}
	m, _ := aIn.first("accept-")
	if from, ok := j.from(string(m.Data)); !ok || from != b.PeerID() {
		t.Fatalf("the validator saw %q from %q (asked: %v), want from b %q", m.Data, from, ok, b.PeerID())
	}
}

func testValidatorRemoved(t *testing.T, a, b sdk.Network) {
	const topic = "plugintest/unvalidated"
	_, tv, _ := topicCaps(t, a)
	reject := func(context.Context, string, []byte) sdk.Verdict { return sdk.VerdictReject }
	if err := tv.ValidateTopic(topic, reject); err != nil {
		t.Fatalf("validate topic: %v", err)
	}
	if err := tv.ValidateTopic(topic, nil); err != nil {
		t.Fatalf("remove validator: %v", err)
	}
	aIn := subscribe(t, a, topic)
	subscribe(t, b, topic)
	connectNetworks(t, a, b)
	publishUntil(t, b, topic, "free", aIn)
}

func testScorePeer(t *testing.T, a, b sdk.Network) {
	ctx := testCtx(t)
	connectNetworks(t, a, b)
	_, _, ps := topicCaps(t, a)
	for _, d := range []float64{-1, 0.5} {
		if err := ps.ScorePeer(ctx, b.PeerID(), d, "plugintest"); err != nil {
			t.Fatalf("score peer %v: %v", d, err)
		}
	}
	for _, d := range []float64{math.NaN(), math.Inf(-1)} {
		if err := ps.ScorePeer(ctx, b.PeerID(), d, "plugintest"); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Fatalf("score peer %v: err = %v, want sdk.ErrInvalidArgument", d, err)
		}
	}
}
