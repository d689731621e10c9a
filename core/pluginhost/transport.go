package pluginhost

import (
	"context"
	"fmt"
	"net"

	"github.com/skein-p2p/skein/sdk"
)

// transportProxy is the sdk.Transport the host hands out for a plugin.
// Listen and Dial are not retried after a crash: the listener or connection
// they made died with the process and the caller decides whether to make a
// new one. A Listener from a crashed plugin fails Accept with
// ErrPluginCrashed.
type transportProxy struct {
	p        *Plugin
	protocol string
}

// packetTransportProxy adds the PacketTransport capability when the plugin
// has it.
type packetTransportProxy struct {
	*transportProxy
	profile sdk.PacketProfile
}

var (
	_ sdk.Transport       = (*transportProxy)(nil)
	_ sdk.PacketTransport = (*packetTransportProxy)(nil)
)

// Transport returns the plugin's transport, valid across restarts. It
// implements sdk.PacketTransport when the plugin's transport does.
func (p *Plugin) Transport() (sdk.Transport, error) {
	p.mu.Lock()
	in := p.cur
	p.mu.Unlock()
	if in == nil {
		return nil, fmt.Errorf("plugin %s: transport: %w", p.spec.Name, ErrPluginStopped)
	}
	if in.transport == nil {
		return nil, fmt.Errorf("plugin %s: %w: transport", p.spec.Name, ErrKindNotServed)
	}
	tp := &transportProxy{p: p, protocol: in.transport.Protocol()}
	if pt, ok := in.transport.(sdk.PacketTransport); ok {
		return &packetTransportProxy{transportProxy: tp, profile: pt.PacketProfile()}, nil
	}
	return tp, nil
}

// Protocol is the multiaddr protocol the plugin registered (as it said at
// the time Transport was called; a restart does not change it).
func (t *transportProxy) Protocol() string { return t.protocol }

func (t *transportProxy) Listen(ctx context.Context, addr string) (sdk.Listener, error) {
	var l sdk.Listener
	var gen *instance
	err := t.p.call(ctx, "transport listen", notIdempotent, func(in *instance) error {
		if in.transport == nil {
			return fmt.Errorf("plugin %s: %w: transport", t.p.spec.Name, ErrKindNotServed)
		}
		var err error
		l, err = in.transport.Listen(ctx, addr)
		gen = in
		return err
	})
	if err != nil {
		return nil, err
	}
	return &listenerProxy{Listener: l, p: t.p, in: gen}, nil
}

func (t *transportProxy) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := t.p.call(ctx, "transport dial", notIdempotent, func(in *instance) error {
		if in.transport == nil {
			return fmt.Errorf("plugin %s: %w: transport", t.p.spec.Name, ErrKindNotServed)
		}
		var err error
		c, err = in.transport.Dial(ctx, addr)
		return err
	})
	return c, err
}

func (t *packetTransportProxy) PacketProfile() sdk.PacketProfile { return t.profile }

// listenerProxy reports the crash of the instance it was made on.
type listenerProxy struct {
	sdk.Listener
	p  *Plugin
	in *instance
}

func (l *listenerProxy) Accept(ctx context.Context) (net.Conn, error) {
	c, err := l.Listener.Accept(ctx)
	if err != nil && crashedDuring(ctx, l.in, err) {
		return nil, fmt.Errorf("plugin %s: transport accept: %w (pid %d): %v", l.p.spec.Name, ErrPluginCrashed, l.in.pid, err)
	}
	return c, err
}

// discoveryProxy is the sdk.Discovery the host hands out for a plugin.
// Advertise is retried after a crash (announcing again is harmless and it
// runs until ctx ends anyway). The channel of FindPeers closes when the
// plugin crashes; the caller calls FindPeers again.
type discoveryProxy struct{ p *Plugin }

var _ sdk.Discovery = (*discoveryProxy)(nil)

// Discovery returns the plugin's discovery, valid across restarts.
func (p *Plugin) Discovery() (sdk.Discovery, error) {
	p.mu.Lock()
	in := p.cur
	p.mu.Unlock()
	if in == nil {
		return nil, fmt.Errorf("plugin %s: discovery: %w", p.spec.Name, ErrPluginStopped)
	}
	if in.discovery == nil {
		return nil, fmt.Errorf("plugin %s: %w: discovery", p.spec.Name, ErrKindNotServed)
	}
	return &discoveryProxy{p: p}, nil
}

func (d *discoveryProxy) Advertise(ctx context.Context, namespace string, self sdk.PeerInfo) error {
	return d.p.call(ctx, "discovery advertise", idempotent, func(in *instance) error {
		if in.discovery == nil {
			return fmt.Errorf("plugin %s: %w: discovery", d.p.spec.Name, ErrKindNotServed)
		}
		return in.discovery.Advertise(ctx, namespace, self)
	})
}

func (d *discoveryProxy) FindPeers(ctx context.Context, namespace string) (<-chan sdk.PeerInfo, error) {
	var ch <-chan sdk.PeerInfo
	err := d.p.call(ctx, "discovery find peers", idempotent, func(in *instance) error {
		if in.discovery == nil {
			return fmt.Errorf("plugin %s: %w: discovery", d.p.spec.Name, ErrKindNotServed)
		}
		var err error
		ch, err = in.discovery.FindPeers(ctx, namespace)
		return err
	})
	return ch, err
}
