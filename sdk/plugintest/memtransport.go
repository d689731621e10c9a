package plugintest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/skein-p2p/skein/sdk"
)

// MemTransport is an in-memory reference sdk.Transport (and sdk.Plugin, ID
// "transport.memory", protocol "x-memory") for tests: Listen registers a
// name in this process, Dial connects to it with net.Pipe. Listen("")
// picks a fresh name.
type MemTransport struct {
	mu        sync.Mutex
	listeners map[string]*memListener
	next      atomic.Uint64
}

var (
	_ sdk.Transport = (*MemTransport)(nil)
	_ sdk.Plugin    = (*MemTransport)(nil)
)

// NewMemTransport returns a transport with no listeners.
func NewMemTransport() *MemTransport {
	return &MemTransport{listeners: map[string]*memListener{}}
}

// Describe says it is the transport.memory plugin.
func (m *MemTransport) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: "transport.memory", Kinds: []sdk.Kind{sdk.KindTransport}, Version: "1.0.0"}, nil
}

// Configure accepts only an empty config.
func (m *MemTransport) Configure(_ context.Context, cfg map[string]any) ([]sdk.Diagnostic, error) {
	var diags []sdk.Diagnostic
	for k := range cfg {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: k, Message: "unknown key"})
	}
	return diags, nil
}

// Start does nothing.
func (m *MemTransport) Start(context.Context) error { return nil }

// Stop closes every listener.
func (m *MemTransport) Stop(context.Context) error {
	m.mu.Lock()
	ls := m.listeners
	m.listeners = map[string]*memListener{}
	m.mu.Unlock()
	for _, l := range ls {
		_ = l.Close()
	}
	return nil
}

// Protocol is "x-memory".
func (m *MemTransport) Protocol() string { return "x-memory" }

// Listen registers addr ("" for a fresh name).
func (m *MemTransport) Listen(ctx context.Context, addr string) (sdk.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if addr == "" {
		addr = fmt.Sprintf("mem-%d", m.next.Add(1))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.listeners[addr]; ok {
		return nil, fmt.Errorf("listen %s: address in use", addr)
	}
	l := &memListener{t: m, addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
	m.listeners[addr] = l
	return l, nil
}

// Dial connects to the listener registered under addr.
func (m *MemTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	m.mu.Lock()
	l, ok := m.listeners[addr]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("dial %s: no listener", addr)
	}
	a, b := net.Pipe()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.closed:
		return nil, fmt.Errorf("dial %s: listener closed", addr)
	case <-ctx.Done():
		return nil, fmt.Errorf("dial %s: %w", addr, ctx.Err())
	}
}

type memListener struct {
	t      *MemTransport
	addr   string
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func (l *memListener) Accept(ctx context.Context) (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *memListener) Addr() string { return l.addr }

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.t.mu.Lock()
		if l.t.listeners[l.addr] == l {
			delete(l.t.listeners, l.addr)
		}
		l.t.mu.Unlock()
	})
	return nil
}

// MemDiscovery is an in-memory reference sdk.Discovery (and sdk.Plugin, ID
// "discovery.memory"): every MemDiscovery sharing a medium sees what the
// others (and itself) advertise.
type MemDiscovery struct {
	medium *DiscoveryMedium
}

var (
	_ sdk.Discovery = (*MemDiscovery)(nil)
	_ sdk.Plugin    = (*MemDiscovery)(nil)
)

// DiscoveryMedium is the shared "air" of MemDiscovery instances.
type DiscoveryMedium struct {
	mu       sync.Mutex
	adverts  map[string]map[string]sdk.PeerInfo // namespace -> id -> info
	watchers map[string]map[chan sdk.PeerInfo]struct{}
}

// NewDiscoveryMedium returns an empty medium.
func NewDiscoveryMedium() *DiscoveryMedium {
	return &DiscoveryMedium{adverts: map[string]map[string]sdk.PeerInfo{}, watchers: map[string]map[chan sdk.PeerInfo]struct{}{}}
}

// NewMemDiscovery returns a discovery on medium.
func NewMemDiscovery(medium *DiscoveryMedium) *MemDiscovery { return &MemDiscovery{medium: medium} }

// Describe says it is the discovery.memory plugin.
func (d *MemDiscovery) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: "discovery.memory", Kinds: []sdk.Kind{sdk.KindDiscovery}, Version: "1.0.0"}, nil
}

// Configure accepts only an empty config.
func (d *MemDiscovery) Configure(_ context.Context, cfg map[string]any) ([]sdk.Diagnostic, error) {
	var diags []sdk.Diagnostic
	for k := range cfg {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: k, Message: "unknown key"})
	}
	return diags, nil
}

// Start does nothing.
func (d *MemDiscovery) Start(context.Context) error { return nil }

// Stop does nothing.
func (d *MemDiscovery) Stop(context.Context) error { return nil }

// Advertise publishes self under namespace until ctx ends.
func (d *MemDiscovery) Advertise(ctx context.Context, namespace string, self sdk.PeerInfo) error {
	if self.ID == "" {
		return fmt.Errorf("advertise: empty peer id: %w", sdk.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m := d.medium
	m.mu.Lock()
	if m.adverts[namespace] == nil {
		m.adverts[namespace] = map[string]sdk.PeerInfo{}
	}
	m.adverts[namespace][self.ID] = self
	var ws []chan sdk.PeerInfo
	for w := range m.watchers[namespace] {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	for _, w := range ws {
		select {
		case w <- self:
		default: // a slow finder misses a repeat, never blocks an advert
		}
	}
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		delete(m.adverts[namespace], self.ID)
		m.mu.Unlock()
	}()
	return nil
}

// FindPeers streams the peers advertised under namespace, then new ones,
// until ctx ends.
func (d *MemDiscovery) FindPeers(ctx context.Context, namespace string) (<-chan sdk.PeerInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := d.medium
	w := make(chan sdk.PeerInfo, 64)
	m.mu.Lock()
	if m.watchers[namespace] == nil {
		m.watchers[namespace] = map[chan sdk.PeerInfo]struct{}{}
	}
	m.watchers[namespace][w] = struct{}{}
	var known []sdk.PeerInfo
	for _, p := range m.adverts[namespace] {
		known = append(known, p)
	}
	m.mu.Unlock()
	out := make(chan sdk.PeerInfo)
	go func() {
		defer close(out)
		defer func() {
			m.mu.Lock()
			delete(m.watchers[namespace], w)
			m.mu.Unlock()
		}()
		for _, p := range known {
			select {
			case out <- p:
			case <-ctx.Done():
				return
			}
		}
		for {
			select {
			case p := <-w:
				select {
				case out <- p:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
