package ipfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/skein-p2p/skein/sdk"
)

var (
	_ sdk.PeerNotifier      = (*Network)(nil)
	_ sdk.DirectMessenger   = (*Network)(nil)
	_ sdk.PeerBlocker       = (*Network)(nil)
	_ sdk.TopicPeerNotifier = (*Network)(nil)
)

// MaxDirectMessage bounds one direct request or response.
const MaxDirectMessage = 4 << 20

// ErrMessageTooLarge is returned for a direct message over MaxDirectMessage.
var ErrMessageTooLarge = errors.New("network.ipfs: direct message too large")

// TopicPeerEvents implements sdk.TopicPeerNotifier with the topic's
// gossipsub event handler: a join is gossipsub learning that the peer
// subscribes to the topic. On a closed topic (gate.go) a peer not admitted
// still shows as joined (its subscription is kept), while the peer learns
// of this node's subscription only once admitted; an admitted member's
// join therefore marks the moment the topic's messages flow between them.
// The events of one handler are coalesced by gossipsub: a join followed
// by a leave before they are read is reported as nothing.
func (n *Network) TopicPeerEvents(ctx context.Context, topic string) (<-chan sdk.TopicPeerEvent, error) {
	if topic == "" {
		return nil, fmt.Errorf("network.ipfs: topic peer events: empty topic: %w", sdk.ErrInvalidArgument)
	}
	t, err := n.topic(topic)
	if err != nil {
		return nil, err
	}
	h, err := t.EventHandler()
	if err != nil {
		return nil, fmt.Errorf("network.ipfs: topic peer events: %w", err)
	}
	out := make(chan sdk.TopicPeerEvent, 64)
	go func() {
		defer close(out)
		defer h.Cancel()
		for {
			ev, err := h.NextPeerEvent(ctx)
			if err != nil {
				return
			}
			select {
			case out <- sdk.TopicPeerEvent{Peer: ev.Peer.String(), Joined: ev.Type == pubsub.PeerJoin}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// PeerEvents implements sdk.PeerNotifier.
func (n *Network) PeerEvents(ctx context.Context) (<-chan sdk.PeerEvent, error) {
	h, _, _, err := n.running()
	if err != nil {
		return nil, err
	}
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return nil, fmt.Errorf("network.ipfs: peer events: %w", err)
	}
	out := make(chan sdk.PeerEvent, 64)
	initial := h.Network().Peers()
	go func() {
		defer close(out)
		defer sub.Close()
		for _, p := range initial {
			select {
			case out <- sdk.PeerEvent{Peer: p.String(), Connected: true}:
			case <-ctx.Done():
				return
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case raw, ok := <-sub.Out():
				if !ok {
					return
				}
				e := raw.(event.EvtPeerConnectednessChanged)
				ev := sdk.PeerEvent{Peer: e.Peer.String(), Connected: e.Connectedness == network.Connected}
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

// directLimits is the config of the direct protocols (a copy, read once
// per stream).
func (n *Network) directLimits() DirectConfig {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg.Direct
}

// HandleRequests implements sdk.DirectMessenger: one request and one
// response per stream, each a uvarint length and that many bytes.
//
// Each stream is attached to the resource manager's service DirectService
// (refused, and reset, over its stream or memory limits), the request's
// buffer grows and is reserved in the stream's scope only as its bytes
// arrive, a peer that sends nothing for direct_idle_timeout in the middle
// of it is cut short, and the whole exchange is bounded by direct_timeout.
func (n *Network) HandleRequests(proto string, handler sdk.RequestHandler) error {
	h, _, _, err := n.running()
	if err != nil {
		return err
	}
	pid := protocol.ID(proto)
	if handler == nil {
		h.RemoveStreamHandler(pid)
		return nil
	}
	n.direct.add(pid)
	n.mu.Lock()
	sc := n.scoring
	n.mu.Unlock()
	h.SetStreamHandler(pid, func(s network.Stream) {
		defer s.Close()
		limits := n.directLimits()
		deadline := time.Now().Add(limits.Timeout)
		_ = s.SetDeadline(deadline)
		from := s.Conn().RemotePeer()
		if err := s.Scope().SetService(DirectService); err != nil {
			n.directFault(sc, from, proto, err)
			_ = s.Reset()
			return
		}
		fr := &frameReader{s: s, idle: limits.IdleTimeout, deadline: deadline}
		defer fr.release()
		req, err := fr.read()
		if err != nil {
			n.directFault(sc, from, proto, err)
			_ = s.Reset()
			return
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		resp, err := handler(ctx, from.String(), req)
		if err != nil {
			n.logger.Debug("direct request refused", "peer", from.String(), "protocol", proto, "err", err)
			_ = s.Reset()
			return
		}
		if err := fr.reserve(len(resp)); err != nil {
			n.logger.Debug("direct answer dropped: resource limit", "peer", from.String(), "protocol", proto, "err", err)
			_ = s.Reset()
			return
		}
		if err := writeFrame(s, resp); err != nil {
			_ = s.Reset()
		}
	})
	return nil
}

// Penalties of a peer's direct requests that go wrong (application score,
// see score.go): a frame over MaxDirectMessage or a length prefix that is
// no uvarint is garbage no honest peer sends; a stall or a request over
// the resource limits may be a slow link or a busy peer, but a flood of
// them is not.
const (
	malformedFramePenalty = 10
	directLimitPenalty    = 1
)

// directFault logs and penalises a direct request that could not be read.
func (n *Network) directFault(sc *scoring, from peer.ID, proto string, err error) {
	penalty := malformedFramePenalty
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, ErrStalled), errors.Is(err, network.ErrResourceLimitExceeded),
		errors.As(err, &timeout) && timeout.Timeout():
		penalty = directLimitPenalty
		n.logger.Debug("direct request dropped", "peer", from.String(), "protocol", proto, "err", err)
	case errors.Is(err, network.ErrReset), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return // the peer gave up: nothing held against it
	default:
		n.logger.Warn("bad direct request; peer penalised", "peer", from.String(), "protocol", proto, "err", err)
	}
	if v, low := n.penalise(sc, from, -float64(penalty), "direct request: "+err.Error()); low {
		n.cutOff(context.Background(), sc, from, v, "bad direct requests")
	}
}

// Request implements sdk.DirectMessenger. The stream is accounted like an
// answering one (HandleRequests), and the answer's buffer grows only as
// its bytes arrive; an answer that stalls for direct_idle_timeout fails.
func (n *Network) Request(ctx context.Context, to, proto string, req []byte) ([]byte, error) {
	h, _, _, err := n.running()
	if err != nil {
		return nil, err
	}
	id, err := peer.Decode(to)
	if err != nil {
		return nil, fmt.Errorf("request %s: bad peer id: %w", proto, err)
	}
	if len(req) > MaxDirectMessage {
		return nil, fmt.Errorf("request %s to %s: %w", proto, to, ErrMessageTooLarge)
	}
	n.direct.add(protocol.ID(proto))
	s, err := h.NewStream(ctx, id, protocol.ID(proto))
	if err != nil {
		return nil, fmt.Errorf("request %s to %s: %w", proto, to, err)
	}
	defer s.Close()
	if err := s.Scope().SetService(DirectService); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("request %s to %s: %w", proto, to, err)
	}
	var deadline time.Time
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl
		_ = s.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	fr := &frameReader{s: s, idle: n.directLimits().IdleTimeout, deadline: deadline}
	defer fr.release()
	if err := fr.reserve(len(req)); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("request %s to %s: %w", proto, to, err)
	}
	if err := writeFrame(s, req); err != nil {
		return nil, fmt.Errorf("request %s to %s: %w", proto, to, err)
	}
	if err := s.CloseWrite(); err != nil {
		return nil, fmt.Errorf("request %s to %s: %w", proto, to, err)
	}
	resp, err := fr.read()
	if err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("request %s to %s: %w", proto, to, err)
	}
	return resp, nil
}

func writeFrame(w io.Writer, b []byte) error {
	if len(b) > MaxDirectMessage {
		return ErrMessageTooLarge
	}
	var hdr [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(hdr[:], uint64(len(b)))
	if _, err := w.Write(hdr[:k]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// BlockPeer implements sdk.PeerBlocker: the peer's connections are closed
// and it cannot connect again, either way, until d has passed.
func (n *Network) BlockPeer(_ context.Context, p string, reason string, d time.Duration) error {
	h, _, _, err := n.running()
	if err != nil {
		return err
	}
	id, err := peer.Decode(p)
	if err != nil {
		return fmt.Errorf("block peer: bad peer id %q: %w", p, err)
	}
	n.gater.block(id, time.Now().Add(d))
	n.logger.Warn("peer cut off", "peer", p, "reason", reason, "for", d.String())
	return h.Network().ClosePeer(id)
}

// gater refuses blocked peers at every stage of a connection.
type gater struct {
	mu      sync.Mutex
	blocked map[peer.ID]time.Time
	now     func() time.Time
}

func newGater() *gater { return &gater{blocked: map[peer.ID]time.Time{}, now: time.Now} }

func (g *gater) block(p peer.ID, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked[p] = until
}

func (g *gater) allowed(p peer.ID) bool {
	_, blocked := g.blockedUntil(p)
	return !blocked
}

// blockedUntil reports whether p is blocked now, and until when.
func (g *gater) blockedUntil(p peer.ID) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.blocked[p]
	if !ok {
		return time.Time{}, false
	}
	if g.now().After(until) {
		delete(g.blocked, p)
		return time.Time{}, false
	}
	return until, true
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return g.allowed(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowed(p) }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allowed(p)
}
func (g *gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.allowed(c.RemotePeer()), 0
}
