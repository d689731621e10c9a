package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

const loopNetworkID = "test.loopnetwork"

// loopNetwork is a test network plugin with the optional capabilities and
// no real peers: a Request to peer "loop" plays a remote peer sending the
// request to this node, so it runs this node's own handler for the
// protocol (which, out of process, is the host's) and returns its answer.
// A Request to "pid" answers the plugin's process id. BlockPeer records
// the peer and emits a disconnect event.
//
// Topics: only the peer "loop" is connected (AdmitPeer of another fails
// with sdk.ErrNotFound). A Request with protocol set to a topic asks the
// plugin's state: peer "closed" answers whether the topic is closed,
// "admitted" whether loop is admitted to it, "validate" runs the topic's
// validator on the request as a message from loop and answers its verdict
// ("1" accept, "2" ignore, "3" reject, "none" without one), "score"
// answers loop's score.
type loopNetwork struct {
	mu         sync.Mutex
	handlers   map[string]sdk.RequestHandler
	blocked    map[string]bool
	events     chan sdk.PeerEvent
	closed     map[string]bool
	admitted   map[string]bool
	validators map[string]sdk.MessageValidator
	score      float64
}

var (
	_ sdk.Network         = (*loopNetwork)(nil)
	_ sdk.DirectMessenger = (*loopNetwork)(nil)
	_ sdk.PeerNotifier    = (*loopNetwork)(nil)
	_ sdk.PeerBlocker     = (*loopNetwork)(nil)
	_ sdk.TopicGate       = (*loopNetwork)(nil)
	_ sdk.TopicValidator  = (*loopNetwork)(nil)
	_ sdk.PeerScorer      = (*loopNetwork)(nil)
)

func newLoopNetwork() *loopNetwork {
	return &loopNetwork{
		handlers: map[string]sdk.RequestHandler{}, blocked: map[string]bool{}, events: make(chan sdk.PeerEvent, 16),
		closed: map[string]bool{}, admitted: map[string]bool{}, validators: map[string]sdk.MessageValidator{},
	}
}

func (n *loopNetwork) CloseTopic(_ context.Context, topic string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed[topic] = true
	return nil
}

func (n *loopNetwork) AdmitPeer(_ context.Context, topic, peer string, admit bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case !n.closed[topic]:
		return fmt.Errorf("topic %s not closed: %w", topic, sdk.ErrInvalidArgument)
	case peer != "loop":
		return fmt.Errorf("peer %s: %w", peer, sdk.ErrNotFound)
	}
	n.admitted[topic] = admit
	return nil
}

func (n *loopNetwork) ValidateTopic(topic string, v sdk.MessageValidator) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if v == nil {
		delete(n.validators, topic)
	} else {
		n.validators[topic] = v
	}
	return nil
}

func (n *loopNetwork) ScorePeer(_ context.Context, peer string, delta float64, _ string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if peer != "loop" {
		return fmt.Errorf("peer %s: %w", peer, sdk.ErrNotFound)
	}
	n.score += delta
	return nil
}

// topicState answers the state requests (see loopNetwork).
func (n *loopNetwork) topicState(ctx context.Context, what, topic string, req []byte) ([]byte, bool) {
	n.mu.Lock()
	closed, admitted, v, score := n.closed[topic], n.admitted[topic], n.validators[topic], n.score
	n.mu.Unlock()
	switch what {
	case "closed":
		return []byte(strconv.FormatBool(closed)), true
	case "admitted":
		return []byte(strconv.FormatBool(admitted)), true
	case "score":
		return []byte(strconv.FormatFloat(score, 'f', -1, 64)), true
	case "validate":
		if v == nil {
			return []byte("none"), true
		}
		return []byte(strconv.Itoa(int(v(ctx, "loop", req)))), true
	}
	return nil, false
}

func (*loopNetwork) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: loopNetworkID, Kinds: []sdk.Kind{sdk.KindNetwork}, Version: "1"}, nil
}
func (*loopNetwork) Configure(context.Context, map[string]any) ([]sdk.Diagnostic, error) {
	return nil, nil
}
func (*loopNetwork) Start(context.Context) error { return nil }
func (*loopNetwork) Stop(context.Context) error  { return nil }
func (*loopNetwork) PeerID() string              { return "12D3KooWloop" }
func (*loopNetwork) Addrs() []string             { return nil }
func (*loopNetwork) PutBlocks(context.Context, []sdk.Block) error {
	return nil
}
func (*loopNetwork) GetBlocks(context.Context, [][]byte) iter.Seq2[sdk.Block, error] {
	return func(func(sdk.Block, error) bool) {}
}
func (*loopNetwork) HasBlock(context.Context, []byte) (bool, error) { return false, nil }
func (*loopNetwork) Publish(context.Context, string, []byte) error  { return nil }
func (*loopNetwork) Connect(context.Context, sdk.PeerInfo) error    { return nil }
func (*loopNetwork) Peers(context.Context) ([]sdk.PeerInfo, error)  { return nil, nil }
func (*loopNetwork) Provide(context.Context, []byte) error          { return nil }
func (*loopNetwork) FindProviders(context.Context, []byte) (<-chan sdk.PeerInfo, error) {
	ch := make(chan sdk.PeerInfo)
	close(ch)
	return ch, nil
}
func (*loopNetwork) Subscribe(context.Context, string) (<-chan sdk.PubsubMessage, error) {
	return make(chan sdk.PubsubMessage), nil
}

func (n *loopNetwork) PeerEvents(ctx context.Context) (<-chan sdk.PeerEvent, error) {
	out := make(chan sdk.PeerEvent)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-n.events:
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

func (n *loopNetwork) HandleRequests(protocol string, h sdk.RequestHandler) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h == nil {
		delete(n.handlers, protocol)
	} else {
		n.handlers[protocol] = h
	}
	return nil
}

func (n *loopNetwork) Request(ctx context.Context, peer, protocol string, req []byte) ([]byte, error) {
	if b, ok := n.topicState(ctx, peer, protocol, req); ok {
		return b, nil
	}
	n.mu.Lock()
	h, blocked := n.handlers[protocol], n.blocked[peer]
	n.mu.Unlock()
	switch {
	case blocked:
		return nil, fmt.Errorf("peer %s blocked", peer)
	case peer == "pid":
		return []byte(strconv.Itoa(os.Getpid())), nil
	case peer != "loop":
		return nil, fmt.Errorf("peer %s: %w", peer, sdk.ErrNotFound)
	case h == nil:
		return nil, fmt.Errorf("no handler for %s", protocol)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return h(ctx, "12D3KooWremote", req)
}

func (n *loopNetwork) BlockPeer(_ context.Context, peer, _ string, _ time.Duration) error {
	n.mu.Lock()
	n.blocked[peer] = true
	n.mu.Unlock()
	select {
	case n.events <- sdk.PeerEvent{Peer: peer}:
	default:
	}
	return nil
}

// hostHandler answers "host:" + request; a request "block" blocks until
// release is closed or ctx ends, after signalling entered.
type hostHandler struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newHostHandler() *hostHandler {
	return &hostHandler{entered: make(chan struct{}), release: make(chan struct{})}
}

func (h *hostHandler) handle(ctx context.Context, from string, req []byte) ([]byte, error) {
	if from != "12D3KooWremote" {
		return nil, fmt.Errorf("unexpected sender %q", from)
	}
	if string(req) == "block" {
		h.once.Do(func() { close(h.entered) })
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return append([]byte("host:"), req...), nil
}

func requestOK(t testing.TB, dm sdk.DirectMessenger, peer, proto, req, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := dm.Request(ctx, peer, proto, []byte(req))
	if err != nil {
		t.Fatalf("request %s %q: %v", peer, req, err)
	}
	if string(got) != want {
		t.Fatalf("request %s %q = %q, want %q", peer, req, got, want)
	}
}

func TestNetworkCapabilitiesThroughProxy(t *testing.T) {
	const proto = "/skein/test/1"
	modes := []struct {
		name string
		spec func(t *testing.T) Spec
	}{
		{"linked", func(*testing.T) Spec { return Spec{Name: "net", Mode: ModeLinked, ID: loopNetworkID} }},
		{"process", func(t *testing.T) Spec { return processSpec(t, "net", "loopnetwork") }},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h, _ := newTestHost(t)
			p := launch(t, h, m.spec(t))
			nw, err := p.Network()
			if err != nil {
				t.Fatal(err)
			}
			dm := nw.(sdk.DirectMessenger)
			ctx := ctxTimeout(t, 20*time.Second)
			evs, err := nw.(sdk.PeerNotifier).PeerEvents(ctx)
			if err != nil {
				t.Fatal(err)
			}
			hh := newHostHandler()
			if err := dm.HandleRequests(proto, hh.handle); err != nil {
				t.Fatal(err)
			}
			requestOK(t, dm, "loop", proto, "x", "host:x")
			if err := dm.HandleRequests("", hh.handle); !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Fatalf("empty protocol: err = %v", err)
			}
			if err := nw.(sdk.PeerBlocker).BlockPeer(ctx, "bad", "spam", time.Minute); err != nil {
				t.Fatal(err)
			}
			select {
			case ev := <-evs:
				if ev.Peer != "bad" || ev.Connected {
					t.Fatalf("event = %+v, want bad disconnected", ev)
				}
			case <-ctx.Done():
				t.Fatal("no peer event for the blocked peer")
			}
			if _, err := dm.Request(ctx, "bad", proto, nil); err == nil {
				t.Fatal("request to a blocked peer succeeded")
			}
		})
	}
}

// TestHandlersSurviveRestart SIGKILLs a network plugin: a request in
// flight fails with ErrPluginCrashed (not retried), the peer-event channel
// closes, and the restarted plugin has the host's handler again.
func TestHandlersSurviveRestart(t *testing.T) {
	const proto = "/skein/test/1"
	h, _ := newTestHost(t)
	p := launch(t, h, processSpec(t, "net", "loopnetwork"))
	nw, err := p.Network()
	if err != nil {
		t.Fatal(err)
	}
	dm := nw.(sdk.DirectMessenger)
	hh := newHostHandler()
	defer close(hh.release)
	if err := dm.HandleRequests(proto, hh.handle); err != nil {
		t.Fatal(err)
	}
	requestOK(t, dm, "loop", proto, "before", "host:before")
	requestOK(t, dm, "pid", proto, "", strconv.Itoa(p.PID()))
	ctx := ctxTimeout(t, 30*time.Second)
	evs, err := nw.(sdk.PeerNotifier).PeerEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}

	inFlight := make(chan error, 1)
	go func() {
		_, err := dm.Request(ctx, "loop", proto, []byte("block"))
		inFlight <- err
	}()
	select {
	case <-hh.entered:
	case <-ctx.Done():
		t.Fatal("the blocking request never reached the host handler")
	}
	oldPID := p.PID()
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-inFlight:
		if !errors.Is(err, ErrPluginCrashed) {
			t.Fatalf("request in flight at the crash: err = %v, want ErrPluginCrashed", err)
		}
	case <-ctx.Done():
		t.Fatal("request in flight did not fail after the crash")
	}
	for ok := true; ok; {
		select {
		case _, ok = <-evs:
		case <-ctx.Done():
			t.Fatal("peer events channel not closed after the crash")
		}
	}
	waitFor(t, p, 20*time.Second, "restart", func() bool { return p.restarts == 1 && p.cur != nil })
	if p.PID() == oldPID {
		t.Fatal("same pid after restart")
	}
	requestOK(t, dm, "pid", proto, "", strconv.Itoa(p.PID()))
	requestOK(t, dm, "loop", proto, "after", "host:after")

	// Removal takes effect on the running plugin.
	if err := dm.HandleRequests(proto, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := dm.Request(ctx, "loop", proto, []byte("x")); err == nil {
		t.Fatal("request answered after the handler was removed")
	}
}

// plainNetwork is a network plugin without the optional capabilities.
type plainNetwork struct {
	sdk.Plugin
	sdk.Network
}

const plainNetworkID = "test.plainnetwork"

func newPlainNetwork() sdk.Plugin {
	n := newLoopNetwork()
	return plainNetwork{Plugin: plainLife{n}, Network: n}
}

// plainLife is loopNetwork's lifecycle under another ID.
type plainLife struct{ *loopNetwork }

func (plainLife) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: plainNetworkID, Kinds: []sdk.Kind{sdk.KindNetwork}, Version: "1"}, nil
}

func TestNetworkCapabilityNotServed(t *testing.T) {
	modes := []struct {
		name string
		spec func(t *testing.T) Spec
	}{
		{"linked", func(*testing.T) Spec { return Spec{Name: "plain", Mode: ModeLinked, ID: plainNetworkID} }},
		{"process", func(t *testing.T) Spec { return processSpec(t, "plain", "plainnetwork") }},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h, _ := newTestHost(t)
			p := launch(t, h, m.spec(t))
			nw, err := p.Network()
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxTimeout(t, 20*time.Second)
			calls := []struct {
				name string
				call func() error
			}{
				{"peer events", func() error { _, err := nw.(sdk.PeerNotifier).PeerEvents(ctx); return err }},
				{"handle requests", func() error { return nw.(sdk.DirectMessenger).HandleRequests("/p", newHostHandler().handle) }},
				{"request", func() error { _, err := nw.(sdk.DirectMessenger).Request(ctx, "loop", "/p", nil); return err }},
				{"block peer", func() error { return nw.(sdk.PeerBlocker).BlockPeer(ctx, "p", "r", time.Second) }},
				{"close topic", func() error { return nw.(sdk.TopicGate).CloseTopic(ctx, "t") }},
				{"admit peer", func() error { return nw.(sdk.TopicGate).AdmitPeer(ctx, "t", "loop", true) }},
				{"validate topic", func() error { return nw.(sdk.TopicValidator).ValidateTopic("t", acceptAll) }},
				{"score peer", func() error { return nw.(sdk.PeerScorer).ScorePeer(ctx, "loop", -1, "r") }},
			}
			for _, c := range calls {
				if err := c.call(); !errors.Is(err, sdk.ErrCapabilityNotServed) {
					t.Fatalf("%s: err = %v, want sdk.ErrCapabilityNotServed", c.name, err)
				}
			}
		})
	}
}

func acceptAll(context.Context, string, []byte) sdk.Verdict { return sdk.VerdictAccept }

// verdictBy judges a message by its content: "ok" is accepted, "bad"
// rejected, "slow" waits for ctx's end, anything else ignored.
func verdictBy(ctx context.Context, from string, data []byte) sdk.Verdict {
	if from != "loop" {
		return sdk.VerdictReject
	}
	switch string(data) {
	case "ok":
		return sdk.VerdictAccept
	case "bad":
		return sdk.VerdictReject
	case "slow":
		<-ctx.Done()
		return sdk.VerdictAccept
	case "panic":
		panic("validator panics")
	}
	return sdk.VerdictIgnore
}

func TestTopicCapabilitiesThroughProxy(t *testing.T) {
	const topic = "skein/test/topic"
	modes := []struct {
		name string
		spec func(t *testing.T) Spec
	}{
		{"linked", func(*testing.T) Spec { return Spec{Name: "net", Mode: ModeLinked, ID: loopNetworkID} }},
		{"process", func(t *testing.T) Spec { return processSpec(t, "net", "loopnetwork") }},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h, _ := newTestHost(t)
			p := launch(t, h, m.spec(t))
			nw, err := p.Network()
			if err != nil {
				t.Fatal(err)
			}
			dm, tg := nw.(sdk.DirectMessenger), nw.(sdk.TopicGate)
			ctx := ctxTimeout(t, 20*time.Second)
			if err := tg.AdmitPeer(ctx, topic, "loop", true); !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Fatalf("admit to a topic not closed: err = %v", err)
			}
			if err := tg.CloseTopic(ctx, topic); err != nil {
				t.Fatal(err)
			}
			requestOK(t, dm, "closed", topic, "", "true")
			if err := tg.AdmitPeer(ctx, topic, "stranger", true); !errors.Is(err, sdk.ErrNotFound) {
				t.Fatalf("admit a peer not connected: err = %v, want ErrNotFound", err)
			}
			if err := tg.AdmitPeer(ctx, topic, "loop", true); err != nil {
				t.Fatal(err)
			}
			requestOK(t, dm, "admitted", topic, "", "true")
			if err := tg.AdmitPeer(ctx, topic, "loop", false); err != nil {
				t.Fatal(err)
			}
			requestOK(t, dm, "admitted", topic, "", "false")

			tv := nw.(sdk.TopicValidator)
			if err := tv.ValidateTopic(topic, verdictBy); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ msg, want string }{{"ok", "1"}, {"bad", "3"}, {"other", "2"}, {"panic", "2"}} {
				requestOK(t, dm, "validate", topic, c.msg, c.want)
			}
			if err := tv.ValidateTopic(topic, nil); err != nil {
				t.Fatal(err)
			}
			requestOK(t, dm, "validate", topic, "ok", "none")

			ps := nw.(sdk.PeerScorer)
			if err := ps.ScorePeer(ctx, "loop", -2.5, "test"); err != nil {
				t.Fatal(err)
			}
			requestOK(t, dm, "score", topic, "", "-2.5")
			if err := ps.ScorePeer(ctx, "nobody", -1, "test"); !errors.Is(err, sdk.ErrNotFound) {
				t.Fatalf("score an unknown peer: err = %v", err)
			}
		})
	}
}

// TestTopicsSurviveRestart SIGKILLs a network plugin: the restarted plugin
// has the closed topic and the host's validator again before any call
// reaches it, but no admission (its connections are new) and a fresh
// score.
func TestTopicsSurviveRestart(t *testing.T) {
	const topic = "skein/test/topic"
	h, _ := newTestHost(t)
	p := launch(t, h, processSpec(t, "net", "loopnetwork"))
	nw, err := p.Network()
	if err != nil {
		t.Fatal(err)
	}
	dm, tg, tv := nw.(sdk.DirectMessenger), nw.(sdk.TopicGate), nw.(sdk.TopicValidator)
	ctx := ctxTimeout(t, 30*time.Second)
	if err := tg.CloseTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := tg.AdmitPeer(ctx, topic, "loop", true); err != nil {
		t.Fatal(err)
	}
	if err := tv.ValidateTopic(topic, verdictBy); err != nil {
		t.Fatal(err)
	}
	if err := nw.(sdk.PeerScorer).ScorePeer(ctx, "loop", -5, "test"); err != nil {
		t.Fatal(err)
	}
	requestOK(t, dm, "validate", topic, "bad", "3")
	oldPID := p.PID()
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, 20*time.Second, "restart", func() bool { return p.restarts == 1 && p.cur != nil })
	requestOK(t, dm, "closed", topic, "", "true")
	requestOK(t, dm, "validate", topic, "bad", "3")
	requestOK(t, dm, "validate", topic, "ok", "1")
	requestOK(t, dm, "admitted", topic, "", "false")
	requestOK(t, dm, "score", topic, "", "0")
	// Removal takes effect on the restarted plugin.
	if err := tv.ValidateTopic(topic, nil); err != nil {
		t.Fatal(err)
	}
	requestOK(t, dm, "validate", topic, "ok", "none")
}
