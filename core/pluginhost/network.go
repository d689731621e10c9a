package pluginhost

import (
	"context"
	"fmt"
	"iter"

	"github.com/skein-p2p/skein/sdk"
)

// remoteNetwork is the accessor an *sdk.RemotePlugin offers once the sdk
// carries the network kind over the wire; until then a network plugin runs
// linked in.
type remoteNetwork interface {
	Network() (sdk.Network, bool)
}

// networkProxy is the sdk.Network the host hands out for a plugin.
//
// Retried after a crash: PutBlocks, HasBlock, Connect, Peers, Provide
// (content-addressed or absolute, so repeating them is harmless), and the
// start of GetBlocks (until its first block), Subscribe and FindProviders.
// Not retried: Publish (a second copy would be a second message). The
// channels of Subscribe and FindProviders close when the plugin crashes;
// the caller subscribes again.
//
// The proxy also implements the optional sdk.PeerNotifier,
// sdk.DirectMessenger, sdk.PeerBlocker, sdk.TopicGate, sdk.TopicValidator
// and sdk.PeerScorer, failing with sdk.ErrCapabilityNotServed when the
// running plugin lacks one; see network_caps.go for how each behaves
// across restarts.
type networkProxy struct{ p *Plugin }

var _ sdk.Network = (*networkProxy)(nil)

// Network returns the plugin's network, valid across restarts.
func (p *Plugin) Network() (sdk.Network, error) {
	p.mu.Lock()
	in := p.cur
	p.mu.Unlock()
	if in == nil {
		return nil, fmt.Errorf("plugin %s: network: %w", p.spec.Name, ErrPluginStopped)
	}
	if in.network == nil {
		return nil, fmt.Errorf("plugin %s: %w: network", p.spec.Name, ErrKindNotServed)
	}
	return &networkProxy{p: p}, nil
}

func (n *networkProxy) do(ctx context.Context, op string, retry func() bool, fn func(sdk.Network) error) error {
	return n.p.call(ctx, op, retry, func(in *instance) error {
		if in.network == nil {
			return fmt.Errorf("plugin %s: %w: network", n.p.spec.Name, ErrKindNotServed)
		}
		return fn(in.network)
	})
}

// current is the running instance's network, nil while it is down.
func (n *networkProxy) current() sdk.Network {
	n.p.mu.Lock()
	defer n.p.mu.Unlock()
	if n.p.cur == nil {
		return nil
	}
	return n.p.cur.network
}

// PeerID is the running plugin's peer ID ("" while it is down).
func (n *networkProxy) PeerID() string {
	if nw := n.current(); nw != nil {
		return nw.PeerID()
	}
	return ""
}

// Addrs are the running plugin's listen addresses (nil while it is down).
func (n *networkProxy) Addrs() []string {
	if nw := n.current(); nw != nil {
		return nw.Addrs()
	}
	return nil
}

func (n *networkProxy) PutBlocks(ctx context.Context, blocks []sdk.Block) error {
	return n.do(ctx, "network put blocks", idempotent, func(nw sdk.Network) error { return nw.PutBlocks(ctx, blocks) })
}

func (n *networkProxy) GetBlocks(ctx context.Context, cids [][]byte) iter.Seq2[sdk.Block, error] {
	return func(yield func(sdk.Block, error) bool) {
		yielded, stopped := false, false
		err := n.do(ctx, "network get blocks", func() bool { return !yielded }, func(nw sdk.Network) error {
			for b, err := range nw.GetBlocks(ctx, cids) {
				if err != nil {
					return err
				}
				yielded = true
				if !yield(b, nil) {
					stopped = true
					return nil
				}
			}
			return nil
		})
		if err != nil && !stopped {
			yield(sdk.Block{}, err)
		}
	}
}

func (n *networkProxy) HasBlock(ctx context.Context, cid []byte) (bool, error) {
	var ok bool
	err := n.do(ctx, "network has block", idempotent, func(nw sdk.Network) error {
		var err error
		ok, err = nw.HasBlock(ctx, cid)
		return err
	})
	return ok, err
}

func (n *networkProxy) Publish(ctx context.Context, topic string, data []byte) error {
	return n.do(ctx, "network publish", notIdempotent, func(nw sdk.Network) error { return nw.Publish(ctx, topic, data) })
}

func (n *networkProxy) Subscribe(ctx context.Context, topic string) (<-chan sdk.PubsubMessage, error) {
	var ch <-chan sdk.PubsubMessage
	err := n.do(ctx, "network subscribe", idempotent, func(nw sdk.Network) error {
		var err error
		ch, err = nw.Subscribe(ctx, topic)
		return err
	})
	return ch, err
}

func (n *networkProxy) Connect(ctx context.Context, pi sdk.PeerInfo) error {
	return n.do(ctx, "network connect", idempotent, func(nw sdk.Network) error { return nw.Connect(ctx, pi) })
}

func (n *networkProxy) Peers(ctx context.Context) ([]sdk.PeerInfo, error) {
	var ps []sdk.PeerInfo
	err := n.do(ctx, "network peers", idempotent, func(nw sdk.Network) error {
		var err error
		ps, err = nw.Peers(ctx)
		return err
	})
	return ps, err
}

func (n *networkProxy) Provide(ctx context.Context, cid []byte) error {
	return n.do(ctx, "network provide", idempotent, func(nw sdk.Network) error { return nw.Provide(ctx, cid) })
}

func (n *networkProxy) FindProviders(ctx context.Context, cid []byte) (<-chan sdk.PeerInfo, error) {
	var ch <-chan sdk.PeerInfo
	err := n.do(ctx, "network find providers", idempotent, func(nw sdk.Network) error {
		var err error
		ch, err = nw.FindProviders(ctx, cid)
		return err
	})
	return ch, err
}
