package pluginhost

import (
	"context"
	"fmt"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// The optional network capabilities through the proxy. The proxy always
// has their methods (the plugin behind it may change with a restart); each
// fails with sdk.ErrCapabilityNotServed when the running instance's network
// lacks the capability.
//
//   - PeerEvents: its start is retried after a crash; the channel closes
//     when the plugin crashes (as Subscribe's does) and the caller asks
//     again.
//   - HandleRequests: the proxy remembers the handlers and registers them
//     again on every restarted instance, before calls reach it. While the
//     plugin is restarting a registration is only remembered.
//   - Request, BlockPeer: not retried (a request is not idempotent in
//     general); one in flight when the plugin crashes fails with
//     ErrPluginCrashed. Made while the plugin is restarting, they wait for
//     it like every call.

var (
	_ sdk.PeerNotifier    = (*networkProxy)(nil)
	_ sdk.DirectMessenger = (*networkProxy)(nil)
	_ sdk.PeerBlocker     = (*networkProxy)(nil)
)

func (n *networkProxy) notServed(what string) error {
	return fmt.Errorf("plugin %s: network %s: %w", n.p.spec.Name, what, sdk.ErrCapabilityNotServed)
}

// PeerEvents implements sdk.PeerNotifier.
func (n *networkProxy) PeerEvents(ctx context.Context) (<-chan sdk.PeerEvent, error) {
	var ch <-chan sdk.PeerEvent
	err := n.do(ctx, "network peer events", idempotent, func(nw sdk.Network) error {
		pn, ok := nw.(sdk.PeerNotifier)
		if !ok {
			return n.notServed("peer events")
		}
		var err error
		ch, err = pn.PeerEvents(ctx)
		return err
	})
	return ch, err
}

// Request implements sdk.DirectMessenger. It is not retried after a crash.
func (n *networkProxy) Request(ctx context.Context, peer, protocol string, request []byte) ([]byte, error) {
	var resp []byte
	err := n.do(ctx, "network request", notIdempotent, func(nw sdk.Network) error {
		dm, ok := nw.(sdk.DirectMessenger)
		if !ok {
			return n.notServed("request")
		}
		var err error
		resp, err = dm.Request(ctx, peer, protocol, request)
		return err
	})
	return resp, err
}

// BlockPeer implements sdk.PeerBlocker. It is not retried after a crash.
func (n *networkProxy) BlockPeer(ctx context.Context, peer, reason string, d time.Duration) error {
	return n.do(ctx, "network block peer", notIdempotent, func(nw sdk.Network) error {
		pb, ok := nw.(sdk.PeerBlocker)
		if !ok {
			return n.notServed("block peer")
		}
		return pb.BlockPeer(ctx, peer, reason, d)
	})
}

// HandleRequests implements sdk.DirectMessenger. The handler is registered
// on the running instance and, after a crash, on each restarted one; a nil
// h removes it. A plugin error (the capability not served, a bad protocol)
// is returned and nothing is remembered.
func (n *networkProxy) HandleRequests(protocol string, h sdk.RequestHandler) error {
	p := n.p
	if protocol == "" {
		return fmt.Errorf("plugin %s: network handle requests: empty protocol: %w", p.spec.Name, sdk.ErrInvalidArgument)
	}
	p.directMu.Lock()
	defer p.directMu.Unlock()
	p.mu.Lock()
	in, st := p.cur, p.state
	p.mu.Unlock()
	if in == nil && (st == StateStopping || st == StateStopped) {
		return fmt.Errorf("plugin %s: network handle requests: %w", p.spec.Name, ErrPluginStopped)
	}
	if in != nil {
		if err := registerHandler(in, protocol, h); err != nil {
			if !crashedDuring(context.Background(), in, err) {
				return fmt.Errorf("plugin %s: network handle requests %s: %w", p.spec.Name, protocol, err)
			}
			// The restart registers it.
			p.logger.Debug("plugin crashed during handler registration; registering on restart", "protocol", protocol)
		}
	}
	if h == nil {
		delete(p.direct, protocol)
		return nil
	}
	if p.direct == nil {
		p.direct = map[string]sdk.RequestHandler{}
	}
	p.direct[protocol] = h
	return nil
}

func registerHandler(in *instance, protocol string, h sdk.RequestHandler) error {
	dm, ok := in.network.(sdk.DirectMessenger)
	if !ok {
		if in.network == nil {
			return fmt.Errorf("%w: network", ErrKindNotServed)
		}
		return sdk.ErrCapabilityNotServed
	}
	return dm.HandleRequests(protocol, h)
}

// reregister puts the remembered handlers onto a restarted instance. Hold
// p.directMu. A failure is logged: the instance is up without that handler.
func (p *Plugin) reregister(in *instance) {
	for protocol, h := range p.direct {
		if err := registerHandler(in, protocol, h); err != nil {
			p.logger.Error("re-register network request handler after restart", "protocol", protocol, "error", err)
			continue
		}
		p.logger.Debug("re-registered network request handler", "protocol", protocol, "pid", in.pid)
	}
}
