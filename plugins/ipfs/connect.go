package ipfs

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// connectExactly connects to info.ID and returns the addresses of
// info.Addrs that worked. With no address it connects through whatever the
// peerstore knows (nil addresses back). With addresses, a connection that
// came up on another address than those given (or one that was up
// already: libp2p then dials nothing) does not vouch for them: each given
// address is then dialled itself, through the host's own transports
// (Noise checks the peer's id), until one answers. A peer already
// connected is told about nothing and keeps its connection; an address
// that does not answer is an error and is not remembered.
func connectExactly(ctx context.Context, h host.Host, info peer.AddrInfo) ([]ma.Multiaddr, error) {
	if err := h.Connect(ctx, info); err != nil {
		return nil, err
	}
	if len(info.Addrs) == 0 {
		return nil, nil
	}
	var up []ma.Multiaddr
	for _, c := range h.Network().ConnsToPeer(info.ID) {
		if a := c.RemoteMultiaddr(); slices.ContainsFunc(info.Addrs, a.Equal) {
			up = append(up, a)
		}
	}
	if len(up) > 0 {
		return up, nil
	}
	var errs []error
	for _, a := range info.Addrs {
		err := probeAddr(ctx, h, info.ID, a)
		if err == nil {
			return []ma.Multiaddr{a}, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
	}
	return nil, fmt.Errorf("connected already, but not on the address given: %w", errors.Join(errs...))
}

// probeAddr dials p on addr alone with the host's transport for it and
// closes the connection: it proves p answers there.
func probeAddr(ctx context.Context, h host.Host, p peer.ID, addr ma.Multiaddr) error {
	s, ok := h.Network().(*swarm.Swarm)
	if !ok {
		return errors.New("cannot dial one address on this host")
	}
	t := s.TransportForDialing(addr)
	if t == nil {
		return fmt.Errorf("no transport for %s", addr)
	}
	c, err := t.Dial(ctx, addr, p)
	if err != nil {
		return err
	}
	if c.RemotePeer() != p {
		c.Close()
		return fmt.Errorf("answered by %s, not %s", c.RemotePeer(), p)
	}
	return c.Close()
}
