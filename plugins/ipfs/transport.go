package ipfs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/skein-p2p/skein/sdk"
)

// pluginTransport is the libp2p transport of one plugin transport protocol.
// It is added to the swarm once, at Start, for every protocol named in the
// config's "transports"; the sdk.Transport behind it is attached (and
// replaced after a restart of its plugin) while the host runs. Every
// connection is upgraded by libp2p's upgrader (Noise, then yamux), so the
// plugin transport only ever carries ciphertext.
type pluginTransport struct {
	proto    ma.Protocol
	upgrader transport.Upgrader
	rcmgr    network.ResourceManager

	mu        sync.Mutex
	name      string        // plugin the transport comes from; "" when detached
	t         sdk.Transport // nil when detached
	listening []ma.Multiaddr
}

var _ transport.Transport = (*pluginTransport)(nil)

// listenTimeout bounds a plugin transport's Listen (libp2p's takes no
// context).
const listenTimeout = 30 * time.Second

// anonymousAddr stands for a remote end whose transport address is empty
// (an unnamed unix socket peer, for one): never dialled.
const anonymousAddr = "?"

// ErrTransportNotAttached is returned when dialling or listening on a
// plugin transport protocol that has no transport attached now.
var ErrTransportNotAttached = errors.New("network.ipfs: no transport attached for this protocol")

func (pt *pluginTransport) current() (sdk.Transport, error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.t == nil {
		return nil, fmt.Errorf("%w: %s", ErrTransportNotAttached, pt.proto.Name)
	}
	return pt.t, nil
}

// value extracts the transport address from a one-component multiaddr of
// this protocol.
func (pt *pluginTransport) value(a ma.Multiaddr) (string, error) {
	if len(a) != 1 || a[0].Code() != pt.proto.Code {
		return "", fmt.Errorf("%w: %s is not a /%s address", ErrBadTransportAddr, a, pt.proto.Name)
	}
	return string(a[0].RawValue()), nil
}

func (pt *pluginTransport) multiaddr(addr string) ma.Multiaddr {
	if addr == "" {
		addr = anonymousAddr
	}
	m, err := TransportMultiaddr(pt.proto, addr)
	if err != nil {
		m, _ = TransportMultiaddr(pt.proto, anonymousAddr)
	}
	return m
}

// CanDial implements transport.Transport.
func (pt *pluginTransport) CanDial(a ma.Multiaddr) bool {
	v, err := pt.value(a)
	return err == nil && v != anonymousAddr
}

// Dial implements transport.Transport.
func (pt *pluginTransport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	addr, err := pt.value(raddr)
	if err != nil {
		return nil, err
	}
	t, err := pt.current()
	if err != nil {
		return nil, err
	}
	scope, err := pt.rcmgr.OpenConnection(network.DirOutbound, true, raddr)
	if err != nil {
		return nil, err
	}
	c, err := t.Dial(ctx, addr)
	if err != nil {
		scope.Done()
		return nil, fmt.Errorf("dial %s: %w", raddr, err)
	}
	mc := &maConn{Conn: c, local: pt.multiaddr(addrOf(c.LocalAddr())), remote: raddr}
	return pt.upgrader.Upgrade(ctx, pt, mc, network.DirOutbound, p, scope)
}

// Listen implements transport.Transport.
func (pt *pluginTransport) Listen(laddr ma.Multiaddr) (transport.Listener, error) {
	addr, err := pt.value(laddr)
	if err != nil {
		return nil, err
	}
	pt.mu.Lock()
	t := pt.t
	pt.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("%w: %s", ErrTransportNotAttached, pt.proto.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), listenTimeout)
	defer cancel()
	l, err := t.Listen(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", laddr, err)
	}
	actual, err := TransportMultiaddr(pt.proto, l.Addr())
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("listen %s: transport reports address %q: %w", laddr, l.Addr(), err)
	}
	lctx, lcancel := context.WithCancel(context.Background())
	ml := &maListener{pt: pt, l: l, addr: actual, ctx: lctx, cancel: lcancel}
	pt.mu.Lock()
	pt.listening = append(pt.listening, actual)
	pt.mu.Unlock()
	return pt.upgrader.UpgradeGatedMaListener(pt, pt.upgrader.GateMaListener(ml)), nil
}

// Protocols implements transport.Transport.
func (pt *pluginTransport) Protocols() []int { return []int{pt.proto.Code} }

// Proxy implements transport.Transport.
func (pt *pluginTransport) Proxy() bool { return false }

func (pt *pluginTransport) String() string { return "plugin transport /" + pt.proto.Name }

func addrOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// maConn is a plugin transport connection with its multiaddrs.
type maConn struct {
	net.Conn
	local, remote ma.Multiaddr
}

var _ manet.Conn = (*maConn)(nil)

func (c *maConn) LocalMultiaddr() ma.Multiaddr  { return c.local }
func (c *maConn) RemoteMultiaddr() ma.Multiaddr { return c.remote }

// maListener adapts an sdk.Listener to manet.Listener.
type maListener struct {
	pt     *pluginTransport
	l      sdk.Listener
	addr   ma.Multiaddr
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

var _ manet.Listener = (*maListener)(nil)

// maxAcceptFailures is how many Accept errors in a row (other than the
// listener closing) a listener survives: one connection that fails to be
// handed over must not end the listener, a broken one must not spin.
const maxAcceptFailures = 8

func (l *maListener) Accept() (manet.Conn, error) {
	for failures := 0; ; failures++ {
		c, err := l.l.Accept(l.ctx)
		if err == nil {
			return &maConn{Conn: c, local: l.addr, remote: l.pt.multiaddr(addrOf(c.RemoteAddr()))}, nil
		}
		if l.ctx.Err() != nil {
			return nil, transport.ErrListenerClosed
		}
		if errors.Is(err, net.ErrClosed) || errors.Is(err, sdk.ErrPluginUnavailable) || failures+1 >= maxAcceptFailures {
			return nil, fmt.Errorf("accept on %s: %w", l.addr, err)
		}
		t := time.NewTimer(time.Duration(10<<failures) * time.Millisecond)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return nil, transport.ErrListenerClosed
		case <-t.C:
		}
	}
}

func (l *maListener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.l.Close()
		l.pt.mu.Lock()
		for i, a := range l.pt.listening {
			if a.Equal(l.addr) {
				l.pt.listening = append(l.pt.listening[:i], l.pt.listening[i+1:]...)
				break
			}
		}
		l.pt.mu.Unlock()
	})
	return err
}

func (l *maListener) Multiaddr() ma.Multiaddr { return l.addr }

func (l *maListener) Addr() net.Addr {
	return sdk.NetAddr{Protocol: l.pt.proto.Name, Address: l.l.Addr()}
}
