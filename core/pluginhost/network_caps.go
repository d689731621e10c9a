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
//   - PeerEvents, TopicPeerEvents: their start is retried after a crash;
//     the channel closes when the plugin crashes (as Subscribe's does) and
//     the caller asks again.
//   - HandleRequests: the proxy remembers the handlers and registers them
//     again on every restarted instance, before calls reach it. While the
//     plugin is restarting a registration is only remembered.
//   - Request, BlockPeer: not retried (a request is not idempotent in
//     general); one in flight when the plugin crashes fails with
//     ErrPluginCrashed. Made while the plugin is restarting, they wait for
//     it like every call.
//   - CloseTopic, ValidateTopic: remembered like handlers and applied
//     again on every restarted instance, before calls reach it (so a topic
//     is closed before anything subscribes to it or publishes on it).
//   - AdmitPeer: not remembered, not retried. A restarted plugin is a new
//     libp2p host: every connection of the old one is gone, and with it
//     every admission (admission is per connection). The caller learns of
//     the crash (ErrPluginCrashed, its PeerEvents channel closing) and
//     admits each peer again once it has reconnected and proved itself
//     again.
//   - ScorePeer: not retried (a delta applied twice counts twice). Scores,
//     and the blocks they led to, live in the plugin process and start
//     afresh after a restart.

var (
	_ sdk.PeerNotifier      = (*networkProxy)(nil)
	_ sdk.DirectMessenger   = (*networkProxy)(nil)
	_ sdk.PeerBlocker       = (*networkProxy)(nil)
	_ sdk.TopicGate         = (*networkProxy)(nil)
	_ sdk.TopicValidator    = (*networkProxy)(nil)
	_ sdk.PeerScorer        = (*networkProxy)(nil)
	_ sdk.TopicPeerNotifier = (*networkProxy)(nil)
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

// TopicPeerEvents implements sdk.TopicPeerNotifier.
func (n *networkProxy) TopicPeerEvents(ctx context.Context, topic string) (<-chan sdk.TopicPeerEvent, error) {
	var ch <-chan sdk.TopicPeerEvent
	err := n.do(ctx, "network topic peer events", idempotent, func(nw sdk.Network) error {
		tn, ok := nw.(sdk.TopicPeerNotifier)
		if !ok {
			return n.notServed("topic peer events")
		}
		var err error
		ch, err = tn.TopicPeerEvents(ctx, topic)
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

// restartCallTimeout bounds each call that puts remembered state onto a
// restarted instance.
const restartCallTimeout = 10 * time.Second

// reregister puts the remembered handlers, closed topics and validators
// onto a restarted instance. Hold p.directMu. A failure is logged: the
// instance is up without it.
func (p *Plugin) reregister(in *instance) {
	for protocol, h := range p.direct {
		if err := registerHandler(in, protocol, h); err != nil {
			p.logger.Error("re-register network request handler after restart", "protocol", protocol, "error", err)
			continue
		}
		p.logger.Debug("re-registered network request handler", "protocol", protocol, "pid", in.pid)
	}
	for topic := range p.closedTopics {
		ctx, cancel := context.WithTimeout(context.Background(), restartCallTimeout)
		err := closeTopic(ctx, in, topic)
		cancel()
		if err != nil {
			// Fail closed: a topic that cannot be closed again would leak.
			p.logger.Error("close network topic again after restart", "topic", topic, "error", err)
			continue
		}
	}
	for topic, v := range p.validators {
		if err := registerValidator(in, topic, v); err != nil {
			p.logger.Error("re-register network topic validator after restart", "topic", topic, "error", err)
			continue
		}
		p.logger.Debug("re-registered network topic validator", "topic", topic, "pid", in.pid)
	}
}

// CloseTopic implements sdk.TopicGate. The topic is closed on the running
// instance and, after a crash, on each restarted one before it serves
// calls; while the plugin is restarting it is only remembered. A plugin
// error (the capability not served, a bad topic) is returned and nothing
// is remembered.
func (n *networkProxy) CloseTopic(ctx context.Context, topic string) error {
	p := n.p
	p.directMu.Lock()
	defer p.directMu.Unlock()
	p.mu.Lock()
	in, st := p.cur, p.state
	p.mu.Unlock()
	if in == nil && (st == StateStopping || st == StateStopped) {
		return fmt.Errorf("plugin %s: network close topic: %w", p.spec.Name, ErrPluginStopped)
	}
	if in != nil {
		if err := closeTopic(ctx, in, topic); err != nil {
			if !crashedDuring(ctx, in, err) {
				return fmt.Errorf("plugin %s: network close topic %s: %w", p.spec.Name, topic, err)
			}
			p.logger.Debug("plugin crashed while closing a topic; closing it on restart", "topic", topic)
		}
	}
	if p.closedTopics == nil {
		p.closedTopics = map[string]bool{}
	}
	p.closedTopics[topic] = true
	return nil
}

func closeTopic(ctx context.Context, in *instance, topic string) error {
	tg, ok := in.network.(sdk.TopicGate)
	if !ok {
		if in.network == nil {
			return fmt.Errorf("%w: network", ErrKindNotServed)
		}
		return sdk.ErrCapabilityNotServed
	}
	return tg.CloseTopic(ctx, topic)
}

// AdmitPeer implements sdk.TopicGate. It is not retried after a crash:
// the restarted plugin has none of the old connections, so none of their
// admissions.
func (n *networkProxy) AdmitPeer(ctx context.Context, topic, peer string, admit bool) error {
	return n.do(ctx, "network admit peer", notIdempotent, func(nw sdk.Network) error {
		tg, ok := nw.(sdk.TopicGate)
		if !ok {
			return n.notServed("admit peer")
		}
		return tg.AdmitPeer(ctx, topic, peer, admit)
	})
}

// ScorePeer implements sdk.PeerScorer. It is not retried after a crash.
func (n *networkProxy) ScorePeer(ctx context.Context, peer string, delta float64, reason string) error {
	return n.do(ctx, "network score peer", notIdempotent, func(nw sdk.Network) error {
		ps, ok := nw.(sdk.PeerScorer)
		if !ok {
			return n.notServed("score peer")
		}
		return ps.ScorePeer(ctx, peer, delta, reason)
	})
}

// ValidateTopic implements sdk.TopicValidator. The validator is registered
// on the running instance and, after a crash, on each restarted one; a nil
// v removes it. A plugin error (the capability not served) is returned and
// nothing is remembered.
func (n *networkProxy) ValidateTopic(topic string, v sdk.MessageValidator) error {
	p := n.p
	if topic == "" {
		return fmt.Errorf("plugin %s: network validate topic: empty topic: %w", p.spec.Name, sdk.ErrInvalidArgument)
	}
	p.directMu.Lock()
	defer p.directMu.Unlock()
	p.mu.Lock()
	in, st := p.cur, p.state
	p.mu.Unlock()
	if in == nil && (st == StateStopping || st == StateStopped) {
		return fmt.Errorf("plugin %s: network validate topic: %w", p.spec.Name, ErrPluginStopped)
	}
	if v != nil {
		v = p.forgivingValidator(topic, v)
	}
	if in != nil {
		if err := registerValidator(in, topic, v); err != nil {
			if !crashedDuring(context.Background(), in, err) {
				return fmt.Errorf("plugin %s: network validate topic %s: %w", p.spec.Name, topic, err)
			}
			p.logger.Debug("plugin crashed during validator registration; registering on restart", "topic", topic)
		}
	}
	if v == nil {
		delete(p.validators, topic)
		return nil
	}
	if p.validators == nil {
		p.validators = map[string]sdk.MessageValidator{}
	}
	p.validators[topic] = v
	return nil
}

// forgivingValidator is v with a panic turned into sdk.VerdictIgnore and
// logged: a linked-in plugin calls the node's validator on its own
// goroutines, where a panic would take the node down.
func (p *Plugin) forgivingValidator(topic string, v sdk.MessageValidator) sdk.MessageValidator {
	return func(ctx context.Context, from string, data []byte) (verdict sdk.Verdict) {
		defer func() {
			if r := recover(); r != nil {
				p.logger.Error("network topic validator panicked; message ignored", "topic", topic, "panic", fmt.Sprint(r))
				verdict = sdk.VerdictIgnore
			}
		}()
		return v(ctx, from, data)
	}
}

func registerValidator(in *instance, topic string, v sdk.MessageValidator) error {
	tv, ok := in.network.(sdk.TopicValidator)
	if !ok {
		if in.network == nil {
			return fmt.Errorf("%w: network", ErrKindNotServed)
		}
		return sdk.ErrCapabilityNotServed
	}
	return tv.ValidateTopic(topic, v)
}
