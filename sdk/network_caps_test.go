package sdk_test

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
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// capNetwork is memNetwork with the three optional capabilities, faked in
// memory:
//   - Request to peer "echo" answers "echo:" + request;
//   - Request to peer "loop" plays a remote peer "12D3KooWremote" sending
//     the request to this node: it runs this node's own handler for the
//     protocol and returns that handler's answer;
//   - Request to a blocked peer fails;
//   - Connect and BlockPeer emit peer events.
//
// And the topic capabilities, with only "12D3KooWremote" connected; a
// Request whose protocol is a topic asks the state: peer "closed",
// "admitted" (the remote peer), "score" (its score), "validate" (runs the
// topic's validator on the request as the remote peer's message, with a
// 500 ms deadline, and answers the verdict's number, or "none").
type capNetwork struct {
	*memNetwork
	cmu        sync.Mutex
	handlers   map[string]sdk.RequestHandler
	blocked    map[string]string // peer -> reason
	watchers   []chan sdk.PeerEvent
	closed     map[string]bool
	admitted   map[string]bool
	validators map[string]sdk.MessageValidator
	score      float64
}

var (
	_ sdk.PeerNotifier    = (*capNetwork)(nil)
	_ sdk.DirectMessenger = (*capNetwork)(nil)
	_ sdk.PeerBlocker     = (*capNetwork)(nil)
	_ sdk.TopicGate       = (*capNetwork)(nil)
	_ sdk.TopicValidator  = (*capNetwork)(nil)
	_ sdk.PeerScorer      = (*capNetwork)(nil)
)

const remotePeer = "12D3KooWremote"

func newCapNetwork() *capNetwork {
	return &capNetwork{
		memNetwork: newMemNetwork(), handlers: map[string]sdk.RequestHandler{}, blocked: map[string]string{},
		closed: map[string]bool{}, admitted: map[string]bool{}, validators: map[string]sdk.MessageValidator{},
	}
}

func (n *capNetwork) CloseTopic(_ context.Context, topic string) error {
	n.cmu.Lock()
	defer n.cmu.Unlock()
	n.closed[topic] = true
	return nil
}

func (n *capNetwork) AdmitPeer(_ context.Context, topic, peer string, admit bool) error {
	n.cmu.Lock()
	defer n.cmu.Unlock()
	if peer != remotePeer {
		return fmt.Errorf("peer %s: %w", peer, sdk.ErrNotFound)
	}
	n.admitted[topic] = admit
	return nil
}

func (n *capNetwork) ValidateTopic(topic string, v sdk.MessageValidator) error {
	n.cmu.Lock()
	defer n.cmu.Unlock()
	if v == nil {
		delete(n.validators, topic)
	} else {
		n.validators[topic] = v
	}
	return nil
}

func (n *capNetwork) ScorePeer(_ context.Context, peer string, delta float64, _ string) error {
	n.cmu.Lock()
	defer n.cmu.Unlock()
	n.score += delta
	return nil
}

// topicState answers the state requests (see capNetwork).
func (n *capNetwork) topicState(ctx context.Context, what, topic string, req []byte) ([]byte, bool) {
	n.cmu.Lock()
	closed, admitted, v, score := n.closed[topic], n.admitted[topic], n.validators[topic], n.score
	n.cmu.Unlock()
	switch what {
	case "closed":
		return []byte(fmt.Sprint(closed)), true
	case "admitted":
		return []byte(fmt.Sprint(admitted)), true
	case "score":
		return []byte(fmt.Sprint(score)), true
	case "validate":
		if v == nil {
			return []byte("none"), true
		}
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return []byte(fmt.Sprint(int(v(ctx, remotePeer, req)))), true
	case "receive":
		// A message from the remote peer, delivered to the topic's
		// subscribers if the validator (if any) accepts it.
		verdict := sdk.VerdictAccept
		if v != nil {
			ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			verdict = v(ctx, remotePeer, req)
		}
		if verdict == sdk.VerdictAccept {
			n.mu.Lock()
			for _, ch := range n.subs[topic] {
				ch <- sdk.PubsubMessage{Topic: topic, From: remotePeer, Data: req}
			}
			n.mu.Unlock()
		}
		return []byte(fmt.Sprint(int(verdict))), true
	}
	return nil, false
}

func (*capNetwork) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: "network.memory-caps", Kinds: []sdk.Kind{sdk.KindNetwork}, Version: "1"}, nil
}

func (n *capNetwork) emit(ev sdk.PeerEvent) {
	n.cmu.Lock()
	defer n.cmu.Unlock()
	for _, w := range n.watchers {
		select {
		case w <- ev:
		default: // a slow watcher misses events, as on a real network
		}
	}
}

func (n *capNetwork) Connect(ctx context.Context, p sdk.PeerInfo) error {
	if err := n.memNetwork.Connect(ctx, p); err != nil {
		return err
	}
	n.emit(sdk.PeerEvent{Peer: p.ID, Connected: true})
	return nil
}

func (n *capNetwork) PeerEvents(ctx context.Context) (<-chan sdk.PeerEvent, error) {
	ps, _ := n.Peers(ctx)
	w := make(chan sdk.PeerEvent, 16+len(ps))
	for _, p := range ps {
		w <- sdk.PeerEvent{Peer: p.ID, Connected: true}
	}
	n.cmu.Lock()
	n.watchers = append(n.watchers, w)
	n.cmu.Unlock()
	out := make(chan sdk.PeerEvent)
	go func() {
		defer close(out)
		defer func() {
			n.cmu.Lock()
			n.watchers = slices.DeleteFunc(n.watchers, func(c chan sdk.PeerEvent) bool { return c == w })
			n.cmu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-w:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (n *capNetwork) HandleRequests(protocol string, h sdk.RequestHandler) error {
	n.cmu.Lock()
	defer n.cmu.Unlock()
	if h == nil {
		delete(n.handlers, protocol)
	} else {
		n.handlers[protocol] = h
	}
	return nil
}

func (n *capNetwork) Request(ctx context.Context, peer, protocol string, request []byte) ([]byte, error) {
	if b, ok := n.topicState(ctx, peer, protocol, request); ok {
		return b, nil
	}
	n.cmu.Lock()
	reason, blocked := n.blocked[peer]
	h := n.handlers[protocol]
	n.cmu.Unlock()
	switch {
	case blocked:
		return nil, fmt.Errorf("peer %s is blocked (%s)", peer, reason)
	case peer == "echo":
		return append([]byte("echo:"), request...), nil
	case peer == "loop":
		if h == nil {
			return nil, fmt.Errorf("no handler for %s", protocol)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return h(ctx, "12D3KooWremote", request)
	}
	return nil, fmt.Errorf("peer %s: %w", peer, sdk.ErrNotFound)
}

func (n *capNetwork) BlockPeer(_ context.Context, peer, reason string, _ time.Duration) error {
	n.cmu.Lock()
	n.blocked[peer] = reason
	n.cmu.Unlock()
	n.emit(sdk.PeerEvent{Peer: peer, Connected: false})
	return nil
}

// nextEvent waits for one peer event with a deadline.
func nextEvent(t testing.TB, ch <-chan sdk.PeerEvent) sdk.PeerEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("peer events closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no peer event within 10s")
	}
	return sdk.PeerEvent{}
}

// TopicPeerEvents: every connected peer is on every topic (it reports
// connections as joins).
func (n *capNetwork) TopicPeerEvents(ctx context.Context, topic string) (<-chan sdk.TopicPeerEvent, error) {
	evs, err := n.PeerEvents(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan sdk.TopicPeerEvent)
	go func() {
		defer close(out)
		for ev := range evs {
			select {
			case out <- sdk.TopicPeerEvent{Peer: ev.Peer, Joined: ev.Connected}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// TestTopicPeerEventsAcrossTheWire: the capability is announced and its
// events cross the wire in order, peers already on the topic first; the
// stream ends with its context.
func TestTopicPeerEventsAcrossTheWire(t *testing.T) {
	rp := plugintest.StartProcess(t, "capnetwork")
	desc, _ := rp.Description()
	if !slices.Contains(desc.Capabilities, sdk.CapNetworkTopicPeerEvents) {
		t.Fatalf("capabilities %v lack %q", desc.Capabilities, sdk.CapNetworkTopicPeerEvents)
	}
	n, _ := rp.Network()
	tn := n.(sdk.TopicPeerNotifier)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	if _, err := tn.TopicPeerEvents(ctx, ""); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Fatalf("empty topic: err = %v, want sdk.ErrInvalidArgument", err)
	}
	if err := n.Connect(ctx, sdk.PeerInfo{ID: "p1"}); err != nil {
		t.Fatal(err)
	}
	evs, err := tn.TopicPeerEvents(ctx, "topic")
	if err != nil {
		t.Fatal(err)
	}
	next := func() sdk.TopicPeerEvent {
		t.Helper()
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("topic peer events ended")
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no topic peer event within 10s")
		}
		return sdk.TopicPeerEvent{}
	}
	if ev := next(); ev != (sdk.TopicPeerEvent{Peer: "p1", Joined: true}) {
		t.Fatalf("first event = %+v, want p1 joined (already on the topic)", ev)
	}
	if err := n.Connect(ctx, sdk.PeerInfo{ID: "p2"}); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev != (sdk.TopicPeerEvent{Peer: "p2", Joined: true}) {
		t.Fatalf("event = %+v, want p2 joined", ev)
	}
	cancel()
	select {
	case _, ok := <-evs:
		if ok {
			t.Fatal("event after cancel on a quiet network")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed within 10s of cancel")
	}
}

func TestNetworkCapabilitiesAcrossTheWire(t *testing.T) {
	rp := plugintest.StartProcess(t, "capnetwork")
	desc, _ := rp.Description()
	for _, c := range []string{sdk.CapNetworkPeerEvents, sdk.CapNetworkDirect, sdk.CapNetworkBlockPeer} {
		if !slices.Contains(desc.Capabilities, c) {
			t.Fatalf("capabilities %v lack %q", desc.Capabilities, c)
		}
	}
	n, ok := rp.Network()
	if !ok {
		t.Fatal("plugin does not serve a network")
	}
	dm := n.(sdk.DirectMessenger)
	pn := n.(sdk.PeerNotifier)
	pb := n.(sdk.PeerBlocker)
	ctx := ctxT(t)

	if err := n.Connect(ctx, sdk.PeerInfo{ID: "p1"}); err != nil {
		t.Fatal(err)
	}
	evs, err := pn.PeerEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, evs); ev != (sdk.PeerEvent{Peer: "p1", Connected: true}) {
		t.Fatalf("first event = %+v, want p1 connected (already connected)", ev)
	}
	if err := n.Connect(ctx, sdk.PeerInfo{ID: "p2"}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, evs); ev != (sdk.PeerEvent{Peer: "p2", Connected: true}) {
		t.Fatalf("event = %+v, want p2 connected", ev)
	}

	const proto = "/skein/test/1"
	var mu sync.Mutex
	var froms []string
	if err := dm.HandleRequests(proto, func(ctx context.Context, from string, req []byte) ([]byte, error) {
		mu.Lock()
		froms = append(froms, from)
		mu.Unlock()
		switch string(req) {
		case "refuse":
			return nil, errors.New("refused by host handler")
		case "panic":
			panic("host handler panics")
		}
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("handler ctx has no deadline")
		}
		return append([]byte("host:"), req...), nil
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		peer    string
		proto   string
		req     string
		want    string
		wantErr string
		is      error
	}{
		{"request reaches the plugin network", "echo", proto, "hi", "echo:hi", "", nil},
		{"empty request", "echo", proto, "", "echo:", "", nil},
		{"incoming request reaches the host handler", "loop", proto, "ping", "host:ping", "", nil},
		{"host handler error returns", "loop", proto, "refuse", "", "refused by host handler", nil},
		{"host handler panic is an error", "loop", proto, "panic", "", "panicked", nil},
		{"unknown peer", "nobody", proto, "x", "", "", sdk.ErrNotFound},
		{"unhandled protocol", "loop", "/skein/none/1", "x", "", "no handler", nil},
		{"empty peer", "", proto, "x", "", "", sdk.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dm.Request(ctx, tc.peer, tc.proto, []byte(tc.req))
			if tc.wantErr == "" && tc.is == nil {
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %q, want an error", got)
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
	mu.Lock()
	if len(froms) == 0 || froms[0] != "12D3KooWremote" {
		t.Fatalf("host handler saw senders %v, want 12D3KooWremote", froms)
	}
	mu.Unlock()

	t.Run("concurrent incoming requests", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := fmt.Sprintf("r%d", i)
				got, err := dm.Request(ctx, "loop", proto, []byte(req))
				if err == nil && string(got) != "host:"+req {
					err = fmt.Errorf("got %q for %q", got, req)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("replaced handler answers", func(t *testing.T) {
		if err := dm.HandleRequests(proto, func(context.Context, string, []byte) ([]byte, error) { return []byte("second"), nil }); err != nil {
			t.Fatal(err)
		}
		if got, err := dm.Request(ctx, "loop", proto, []byte("x")); err != nil || string(got) != "second" {
			t.Fatalf("got %q, %v; want second", got, err)
		}
	})

	t.Run("removed handler", func(t *testing.T) {
		if err := dm.HandleRequests(proto, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := dm.Request(ctx, "loop", proto, []byte("x")); err == nil || !strings.Contains(err.Error(), "no handler") {
			t.Fatalf("err = %v, want no handler", err)
		}
	})

	t.Run("block peer reaches the plugin", func(t *testing.T) {
		if err := pb.BlockPeer(ctx, "echo", "spam", time.Minute); err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, evs); ev != (sdk.PeerEvent{Peer: "echo", Connected: false}) {
			t.Fatalf("event = %+v, want echo disconnected", ev)
		}
		if _, err := dm.Request(ctx, "echo", proto, []byte("x")); err == nil || !strings.Contains(err.Error(), "blocked (spam)") {
			t.Fatalf("request to a blocked peer: err = %v", err)
		}
		if err := pb.BlockPeer(ctx, "p3", "x", -time.Second); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Fatalf("negative duration: err = %v, want ErrInvalidArgument", err)
		}
	})
}

func TestPeerEventsCloseWhenCtxEnds(t *testing.T) {
	rp := plugintest.StartProcess(t, "capnetwork")
	n, _ := rp.Network()
	ctx, cancel := context.WithCancel(ctxT(t))
	evs, err := n.(sdk.PeerNotifier).PeerEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-evs:
		if ok {
			t.Fatal("event after cancel on a quiet network")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed within 10s of cancel")
	}
}

func TestNetworkWithoutCapabilitiesSaysSo(t *testing.T) {
	rp := plugintest.StartProcess(t, "network")
	n, _ := rp.Network()
	ctx := ctxT(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"peer events", func() error { _, err := n.(sdk.PeerNotifier).PeerEvents(ctx); return err }},
		{"handle requests", func() error {
			return n.(sdk.DirectMessenger).HandleRequests("/p", func(context.Context, string, []byte) ([]byte, error) { return nil, nil })
		}},
		{"request", func() error { _, err := n.(sdk.DirectMessenger).Request(ctx, "p", "/p", nil); return err }},
		{"block peer", func() error { return n.(sdk.PeerBlocker).BlockPeer(ctx, "p", "r", time.Second) }},
		{"close topic", func() error { return n.(sdk.TopicGate).CloseTopic(ctx, "t") }},
		{"admit peer", func() error { return n.(sdk.TopicGate).AdmitPeer(ctx, "t", "p", true) }},
		{"validate topic", func() error {
			return n.(sdk.TopicValidator).ValidateTopic("t", func(context.Context, string, []byte) sdk.Verdict { return sdk.VerdictAccept })
		}},
		{"score peer", func() error { return n.(sdk.PeerScorer).ScorePeer(ctx, "p", -1, "r") }},
		{"topic peer events", func() error { _, err := n.(sdk.TopicPeerNotifier).TopicPeerEvents(ctx, "t"); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, sdk.ErrCapabilityNotServed) {
				t.Fatalf("err = %v, want sdk.ErrCapabilityNotServed", err)
			}
		})
	}
}

// BenchmarkDirectRequestLoop measures one host Request that the plugin
// turns into an incoming request for the host's handler: two round trips
// over the wire (Request, then the handler stream) per operation.
func BenchmarkDirectRequestLoop(b *testing.B) {
	rp := plugintest.StartProcess(b, "capnetwork")
	n, _ := rp.Network()
	dm := n.(sdk.DirectMessenger)
	if err := dm.HandleRequests("/bench/1", func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil }); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	req := make([]byte, 1024)
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if _, err := dm.Request(ctx, "loop", "/bench/1", req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDirectRequest measures one host Request answered by the
// plugin's network itself (one wire round trip).
func BenchmarkDirectRequest(b *testing.B) {
	rp := plugintest.StartProcess(b, "capnetwork")
	n, _ := rp.Network()
	dm := n.(sdk.DirectMessenger)
	ctx := context.Background()
	req := make([]byte, 1024)
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if _, err := dm.Request(ctx, "echo", "/bench/1", req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTopicCapabilitiesAcrossTheWire: CloseTopic, AdmitPeer and ScorePeer
// reach the plugin, and its network's validator runs the host's
// MessageValidator, whose verdicts (or their absence) come back.
func TestTopicCapabilitiesAcrossTheWire(t *testing.T) {
	rp := plugintest.StartProcess(t, "capnetwork")
	desc, _ := rp.Description()
	for _, c := range []string{sdk.CapNetworkTopicGate, sdk.CapNetworkTopicValidator, sdk.CapNetworkPeerScorer} {
		if !slices.Contains(desc.Capabilities, c) {
			t.Fatalf("capabilities %v lack %q", desc.Capabilities, c)
		}
	}
	n, _ := rp.Network()
	dm, tg, tv, ps := n.(sdk.DirectMessenger), n.(sdk.TopicGate), n.(sdk.TopicValidator), n.(sdk.PeerScorer)
	ctx := ctxT(t)
	const topic = "skein/test/topic"
	ask := func(what, data string) string {
		t.Helper()
		got, err := dm.Request(ctx, what, topic, []byte(data))
		if err != nil {
			t.Fatalf("ask %s: %v", what, err)
		}
		return string(got)
	}

	if err := tg.CloseTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if got := ask("closed", ""); got != "true" {
		t.Fatalf("closed = %s", got)
	}
	if err := tg.AdmitPeer(ctx, topic, "12D3KooWother", true); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("admit a peer not connected: err = %v, want ErrNotFound", err)
	}
	if err := tg.AdmitPeer(ctx, topic, remotePeer, true); err != nil {
		t.Fatal(err)
	}
	if got := ask("admitted", ""); got != "true" {
		t.Fatalf("admitted = %s", got)
	}
	for _, bad := range []func() error{
		func() error { return tg.CloseTopic(ctx, "") },
		func() error { return tg.AdmitPeer(ctx, topic, "", true) },
		func() error { return ps.ScorePeer(ctx, remotePeer, math.NaN(), "r") },
		func() error { return tv.ValidateTopic("", nil) },
	} {
		if err := bad(); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Fatalf("err = %v, want ErrInvalidArgument", err)
		}
	}
	if err := ps.ScorePeer(ctx, remotePeer, -1.5, "test"); err != nil {
		t.Fatal(err)
	}
	if got := ask("score", ""); got != "-1.5" {
		t.Fatalf("score = %s", got)
	}

	var froms sync.Map
	if err := tv.ValidateTopic(topic, func(ctx context.Context, from string, data []byte) sdk.Verdict {
		froms.Store(string(data), from)
		switch string(data) {
		case "accept":
			return sdk.VerdictAccept
		case "reject":
			return sdk.VerdictReject
		case "slow":
			<-ctx.Done() // past the plugin's deadline: no answer in time
			return sdk.VerdictAccept
		case "panic":
			panic("validator panics")
		case "unknown":
			return sdk.Verdict(42)
		}
		return sdk.VerdictIgnore
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ data, want string }{
		{"accept", "1"}, {"ignore", "2"}, {"reject", "3"}, {"slow", "2"}, {"panic", "2"}, {"unknown", "2"},
	} {
		if got := ask("validate", tc.data); got != tc.want {
			t.Fatalf("%s: verdict %s, want %s", tc.data, got, tc.want)
		}
	}
	if from, _ := froms.Load("accept"); from != remotePeer {
		t.Fatalf("the host's validator saw the message from %v, want %s", from, remotePeer)
	}

	t.Run("concurrent validations", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data, want := "accept", "1"
				if i%2 == 1 {
					data, want = "reject", "3"
				}
				got, err := dm.Request(ctx, "validate", topic, []byte(data))
				if err == nil && string(got) != want {
					err = fmt.Errorf("%s: verdict %s, want %s", data, got, want)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("replaced, then removed", func(t *testing.T) {
		if err := tv.ValidateTopic(topic, func(context.Context, string, []byte) sdk.Verdict { return sdk.VerdictReject }); err != nil {
			t.Fatal(err)
		}
		if got := ask("validate", "accept"); got != "3" {
			t.Fatalf("replaced validator: verdict %s, want 3", got)
		}
		if err := tv.ValidateTopic(topic, nil); err != nil {
			t.Fatal(err)
		}
		if got := ask("validate", "accept"); got != "none" {
			t.Fatalf("removed validator: %s, want none", got)
		}
	})
}

// TestAcceptedMessageDeliveredOnceWithItsVerdict: out of process, an
// accepted message reaches the host's one subscription with the
// validator's answer and is not sent again on the Subscribe stream; a
// rejected one is not delivered; with no validator the stream delivers.
func TestAcceptedMessageDeliveredOnceWithItsVerdict(t *testing.T) {
	rp := plugintest.StartProcess(t, "capnetwork")
	n, _ := rp.Network()
	dm, tv := n.(sdk.DirectMessenger), n.(sdk.TopicValidator)
	ctx := ctxT(t)
	const topic = "skein/test/delivered"
	msgs, err := n.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := tv.ValidateTopic(topic, func(_ context.Context, _ string, data []byte) sdk.Verdict {
		if strings.HasPrefix(string(data), "reject") {
			return sdk.VerdictReject
		}
		return sdk.VerdictAccept
	}); err != nil {
		t.Fatal(err)
	}
	receive := func(data string) {
		t.Helper()
		if _, err := dm.Request(ctx, "receive", topic, []byte(data)); err != nil {
			t.Fatalf("receive %s: %v", data, err)
		}
	}
	var want []string
	for i := range 20 {
		d := fmt.Sprintf("accept-%d", i)
		receive(d)
		receive(fmt.Sprintf("reject-%d", i))
		want = append(want, d)
	}
	// Without a validator, the Subscribe stream delivers: "end" comes
	// after anything the stream would have sent twice.
	if err := tv.ValidateTopic(topic, nil); err != nil {
		t.Fatal(err)
	}
	receive("end")
	var got []string
	for {
		select {
		case m := <-msgs:
			if m.From != remotePeer {
				t.Fatalf("message from %q, want %q", m.From, remotePeer)
			}
			got = append(got, string(m.Data))
		case <-ctx.Done():
			t.Fatalf("got %q before the deadline, want %q then end", got, want)
		}
		if len(got) > 0 && got[len(got)-1] == "end" {
			break
		}
	}
	got = got[:len(got)-1]
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want each of %q once", got, want)
	}
	if h := sdk.HandedOver(rp); h != int64(len(want)) {
		t.Fatalf("%d messages handed over with their verdict, want %d (the rest came by the stream)", h, len(want))
	}
}
