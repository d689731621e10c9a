package ipfs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/skein-p2p/skein/sdk"
)

var (
	_ sdk.TransportAttacher      = (*Network)(nil)
	_ sdk.TransportAttachChecker = (*Network)(nil)
)

// ErrTransportNotConfigured is returned by AttachTransport for a transport
// whose protocol is not a key of the config's "transports": a multiaddr
// protocol must be registered before the host starts.
var ErrTransportNotConfigured = errors.New("network.ipfs: transport protocol not configured")

// checkTransportConfig validates the "transports" config value without
// registering anything.
func checkTransportConfig(ts map[string][]string, bad func(key, format string, args ...any)) {
	names := make([]string, 0, len(ts))
	for name := range ts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		key := "transports." + name
		if !protocolNameRE.MatchString(name) {
			bad(key, "%v: %q: want 1-64 of a-z, 0-9 and '-', starting with a letter", ErrBadProtocolName, name)
			continue
		}
		registered.Lock()
		_, ours := registered.names[name]
		registered.Unlock()
		if !ours {
			if p := ma.ProtocolWithName(name); p.Code != 0 {
				bad(key, "%v: %q is already a multiaddr protocol (code %#x): rename the transport", ErrProtocolCollision, name, p.Code)
				continue
			}
			if p := ma.ProtocolWithCode(ProtocolCode(name)); p.Code != 0 {
				bad(key, "%v: %q derives code %#x, already taken by %q: rename one of the transports", ErrProtocolCollision, name, ProtocolCode(name), p.Name)
				continue
			}
		}
		for i, a := range ts[name] {
			if err := checkAddrBytes([]byte(a)); err != nil {
				bad(fmt.Sprintf("%s[%d]", key, i), "%v", err)
			}
		}
	}
}

// CheckAttach implements sdk.TransportAttachChecker: a configured network
// attaches a transport whose protocol is a key of its "transports".
func (n *Network) CheckAttach(protocol string) error {
	n.mu.Lock()
	_, ok := n.cfg.Transports[protocol]
	n.mu.Unlock()
	if !ok {
		return notConfigured(protocol)
	}
	return nil
}

func notConfigured(protocol string) error {
	return fmt.Errorf("%w: add %q under the network plugin's config key transports (with the addresses to listen on, or [] to dial only)", ErrTransportNotConfigured, protocol)
}

// registerTransports registers the configured transport protocols (before the
// host exists: go-multiaddr's registry is not safe to change while
// multiaddrs are parsed elsewhere) and returns them.
func registerTransports(ts map[string][]string) ([]ma.Protocol, error) {
	names := make([]string, 0, len(ts))
	for name := range ts {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []ma.Protocol
	for _, name := range names {
		p, err := RegisterTransportProtocol(name)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// addPluginTransports adds one libp2p transport per registered protocol to
// the host's swarm, upgraded by the host's own upgrader.
func addPluginTransports(h host.Host, protos []ma.Protocol, up transport.Upgrader, rm network.ResourceManager) (map[string]*pluginTransport, error) {
	tn, ok := h.Network().(transport.TransportNetwork)
	if !ok {
		return nil, fmt.Errorf("network.ipfs: the host's network (%T) cannot add transports", h.Network())
	}
	out := map[string]*pluginTransport{}
	for _, p := range protos {
		pt := &pluginTransport{proto: p, upgrader: up, rcmgr: rm}
		if err := tn.AddTransport(pt); err != nil {
			return nil, fmt.Errorf("network.ipfs: add transport /%s: %w", p.Name, err)
		}
		out[p.Name] = pt
	}
	return out, nil
}

// AttachTransport implements sdk.TransportAttacher: the host dials and
// accepts libp2p connections over t under the multiaddr protocol
// t.Protocol(), which must be a key of the config's "transports", and
// listens on that key's addresses. Attaching under the same name again
// replaces the transport (after a restart of its plugin): the old
// listeners are closed first. A protocol attached from another plugin is
// refused.
func (n *Network) AttachTransport(ctx context.Context, name string, t sdk.Transport) error {
	if name == "" || t == nil {
		return fmt.Errorf("network.ipfs: attach transport: %w: need a name and a transport", sdk.ErrInvalidArgument)
	}
	proto := t.Protocol()
	n.attachMu.Lock()
	defer n.attachMu.Unlock()
	n.mu.Lock()
	h, pt, addrs, started := n.host, n.transports[proto], slices.Clone(n.cfg.Transports[proto]), n.started
	n.mu.Unlock()
	if !started {
		return ErrNotStarted
	}
	if pt == nil {
		return fmt.Errorf("attach transport %s (/%s): %w", name, proto, notConfigured(proto))
	}
	pt.mu.Lock()
	prev := pt.name
	pt.mu.Unlock()
	if prev != "" && prev != name {
		return fmt.Errorf("attach transport %s: protocol /%s is already attached from plugin %s", name, proto, prev)
	}
	n.detachLocked(h, pt)
	pt.mu.Lock()
	pt.name, pt.t = name, t
	pt.mu.Unlock()
	for _, a := range addrs {
		if err := ctx.Err(); err != nil {
			n.detachLocked(h, pt)
			return fmt.Errorf("attach transport %s: %w", name, err)
		}
		m, err := TransportMultiaddr(pt.proto, a)
		if err == nil {
			err = h.Network().Listen(m)
		}
		if err != nil {
			n.detachLocked(h, pt)
			return fmt.Errorf("attach transport %s: listen on /%s/%s: %w", name, proto, EscapeTransportAddr(a), err)
		}
	}
	pt.mu.Lock()
	listening := slices.Clone(pt.listening)
	pt.mu.Unlock()
	n.logger.Info("transport attached", "transport", name, "protocol", proto, "listen", fmt.Sprint(listening), "replaced", prev != "")
	n.dialBootstrapOver(pt.proto)
	return nil
}

// dialBootstrapOver dials the bootstrap peers whose address runs over the
// plugin transport proto, just attached: Start dialled them before any
// transport was attached, and a node reachable only over plugin transports
// has no other way in.
func (n *Network) dialBootstrapOver(proto ma.Protocol) {
	n.mu.Lock()
	h, r, boot := n.host, n.redial, slices.Clone(n.cfg.Bootstrap)
	n.mu.Unlock()
	for _, a := range boot {
		info, err := parsePeerAddr(a)
		if err != nil || len(info.Addrs) == 0 || len(info.Addrs[0]) == 0 || info.Addrs[0][0].Code() != proto.Code {
			continue
		}
		if r != nil {
			r.want(*info, true, true) // dial now, and whenever lost
			continue
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// The dial at Start failed for want of this transport: that
			// failure must not hold this one back.
			if s, ok := h.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
				s.Backoff().Clear(info.ID)
			}
			if err := h.Connect(ctx, *info); err != nil {
				n.logger.Warn("bootstrap peer unreachable", "peer", info.ID.String(), "over", proto.Name, "err", err)
			}
		}()
	}
}

// DetachTransport implements sdk.TransportAttacher: the transport attached
// under name is no longer used for new connections and its listeners are
// closed. Detaching a name not attached is a no-op.
func (n *Network) DetachTransport(_ context.Context, name string) error {
	n.attachMu.Lock()
	defer n.attachMu.Unlock()
	n.mu.Lock()
	h := n.host
	var pts []*pluginTransport
	for _, pt := range n.transports {
		pts = append(pts, pt)
	}
	n.mu.Unlock()
	for _, pt := range pts {
		pt.mu.Lock()
		mine := pt.name == name
		pt.mu.Unlock()
		if mine {
			n.detachLocked(h, pt)
			n.logger.Info("transport detached", "transport", name, "protocol", pt.proto.Name)
		}
	}
	return nil
}

// detachLocked drops pt's transport and closes its listeners. Hold
// n.attachMu.
func (n *Network) detachLocked(h host.Host, pt *pluginTransport) {
	pt.mu.Lock()
	pt.name, pt.t = "", nil
	listening := slices.Clone(pt.listening)
	pt.mu.Unlock()
	if len(listening) == 0 || h == nil {
		return
	}
	if lc, ok := h.Network().(interface{ ListenClose(...ma.Multiaddr) }); ok {
		lc.ListenClose(listening...)
	}
}
