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
type loopNetwork struct {
	mu       sync.Mutex
	handlers map[string]sdk.RequestHandler
	blocked  map[string]bool
	events   chan sdk.PeerEvent
}

var (
	_ sdk.Network         = (*loopNetwork)(nil)
	_ sdk.DirectMessenger = (*loopNetwork)(nil)
	_ sdk.PeerNotifier    = (*loopNetwork)(nil)
	_ sdk.PeerBlocker     = (*loopNetwork)(nil)
)

func newLoopNetwork() *loopNetwork {
	return &loopNetwork{handlers: map[string]sdk.RequestHandler{}, blocked: map[string]bool{}, events: make(chan sdk.PeerEvent, 16)}
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
			}
			for _, c := range calls {
				if err := c.call(); !errors.Is(err, sdk.ErrCapabilityNotServed) {
					t.Fatalf("%s: err = %v, want sdk.ErrCapabilityNotServed", c.name, err)
				}
			}
		})
	}
}
