package pluginhost

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// Attaching a transport plugin to a network plugin (sdk.TransportAttacher).
//
// Linked-in network: it is handed the transport proxy itself; with the
// transport out of process, its connections come to the node's process by
// the socket data plane (the descriptor is handed over).
//
// Out-of-process network: it is handed the transport plugin's endpoint
// (the address of its go-plugin server, sdk.EndpointTransport) and the
// network plugin process connects to the transport plugin process itself,
// so the transport's bytes never pass through the node. A linked-in
// transport has no such endpoint: that combination is refused with
// sdk.ErrNoTransportEndpoint.

var (
	_ sdk.TransportAttacher = (*networkProxy)(nil)
	_ sdk.EndpointTransport = (*transportProxy)(nil)
)

// AttachTransport implements sdk.TransportAttacher on the running network
// instance. It is retried after a crash (attaching again replaces).
func (n *networkProxy) AttachTransport(ctx context.Context, name string, t sdk.Transport) error {
	return n.do(ctx, "network attach transport", idempotent, func(nw sdk.Network) error {
		ta, ok := nw.(sdk.TransportAttacher)
		if !ok {
			return n.notServed("attach transport")
		}
		return ta.AttachTransport(ctx, name, t)
	})
}

// DetachTransport implements sdk.TransportAttacher.
func (n *networkProxy) DetachTransport(ctx context.Context, name string) error {
	return n.do(ctx, "network detach transport", idempotent, func(nw sdk.Network) error {
		ta, ok := nw.(sdk.TransportAttacher)
		if !ok {
			return n.notServed("detach transport")
		}
		return ta.DetachTransport(ctx, name)
	})
}

// TransportEndpoint implements sdk.EndpointTransport: the endpoint of the
// running transport plugin process. A linked-in transport has none
// (sdk.ErrNoTransportEndpoint).
func (t *transportProxy) TransportEndpoint() (sdk.TransportEndpoint, error) {
	p := t.p
	p.mu.Lock()
	in := p.cur
	p.mu.Unlock()
	if in == nil {
		return sdk.TransportEndpoint{}, fmt.Errorf("plugin %s: transport endpoint: %w", p.spec.Name, ErrPluginRestarting)
	}
	if in.addr == nil {
		return sdk.TransportEndpoint{}, fmt.Errorf("plugin %s: %w: it runs linked in", p.spec.Name, sdk.ErrNoTransportEndpoint)
	}
	ep := sdk.TransportEndpoint{Network: in.addr.Network(), Address: in.addr.String(), Protocol: t.protocol, DataPlane: sdk.DataPlaneStream}
	socket := slices.Contains(in.desc.Capabilities, sdk.CapTransportSocket)
	if socket && p.spec.DataPlane != sdk.DataPlaneStream {
		ep.DataPlane = sdk.DataPlaneSocket
	}
	return ep, nil
}

// reattachRetry bounds the wait between attempts to attach again after a
// failed one.
const reattachRetry = 5 * time.Second

// KeepTransportAttached attaches the transport of plugin tp to the network
// of plugin np (under tp's name) and attaches it again after every restart
// of either, until ctx ends or either plugin stops. It returns the error of
// the first attachment (and then keeps nothing running); later failures
// are logged and retried.
func KeepTransportAttached(ctx context.Context, np, tp *Plugin) error {
	nw, err := np.Network()
	if err != nil {
		return err
	}
	ta, ok := nw.(sdk.TransportAttacher)
	if !ok {
		return fmt.Errorf("plugin %s: network attach transport: %w", np.spec.Name, sdk.ErrCapabilityNotServed)
	}
	tr, err := tp.Transport()
	if err != nil {
		return err
	}
	attach := func() (ngen, tgen uint64, err error) {
		nin, tin := np.current(), tp.current()
		if nin == nil || tin == nil {
			return 0, 0, fmt.Errorf("attach transport %s to network %s: %w", tp.spec.Name, np.spec.Name, ErrPluginRestarting)
		}
		actx, cancel := context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
		if err := ta.AttachTransport(actx, tp.spec.Name, tr); err != nil {
			return 0, 0, fmt.Errorf("attach transport %s to network %s: %w", tp.spec.Name, np.spec.Name, err)
		}
		return nin.gen, tin.gen, nil
	}
	ngen, tgen, err := attach()
	if err != nil {
		return err
	}
	np.logger.Info("transport attached", "transport", tp.spec.Name)
	go func() {
		retry := (<-chan time.Time)(nil)
		for {
			nch, nst, ncur := np.watch()
			tch, tst, tcur := tp.watch()
			if nst == StateStopping || nst == StateStopped || tst == StateStopping || tst == StateStopped {
				return
			}
			if ncur != nil && tcur != nil && (ncur.gen != ngen || tcur.gen != tgen) {
				g1, g2, err := attach()
				switch {
				case err == nil:
					ngen, tgen, retry = g1, g2, nil
					np.logger.Info("transport attached again after a restart", "transport", tp.spec.Name)
					continue
				case ctx.Err() != nil:
					return
				default:
					np.logger.Error("attach transport after a restart", "transport", tp.spec.Name, "error", err)
					retry = time.After(reattachRetry)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-nch:
			case <-tch:
			case <-retry:
				retry = nil
				ngen, tgen = 0, 0 // force an attempt
			}
		}
	}()
	return nil
}

// current is the running instance (nil while down).
func (p *Plugin) current() *instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// watch returns the channel closed at the next change, the state and the
// running instance, consistently.
func (p *Plugin) watch() (<-chan struct{}, State, *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed, p.state, p.cur
}
