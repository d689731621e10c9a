package ipfs

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ErrPortInUse is returned by Start when a port of a listen address is
// held by another program, such as another node on the same machine.
var ErrPortInUse = errors.New("network.ipfs: port in use")

// portAdvice ends every listen error: what the user can do about it.
const portAdvice = "give this node other ports in the network plugin's config key listen (e.g. /ip4/0.0.0.0/tcp/4101), or port 0 for any free port"

// checkListenPorts binds the TCP or UDP port of each listen address the
// way another program would, without SO_REUSEPORT, and lets it go again.
// libp2p binds TCP with SO_REUSEPORT, so a second node started on the
// same port would share it with the first without a word (each getting
// some of the connections meant for the other); the kernel refuses the
// plain bind while any listener holds the port. Port 0 ("any free port")
// and addresses that are not IP are not checked.
func checkListenPorts(addrs []string) error {
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			continue // Configure reported it
		}
		network, hostport, ok := ipPort(m)
		if !ok {
			continue
		}
		var closer interface{ Close() error }
		switch network {
		case "tcp":
			closer, err = net.Listen(network, hostport)
		default:
			closer, err = net.ListenPacket(network, hostport)
		}
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				_, port, _ := net.SplitHostPort(hostport)
				return fmt.Errorf("%w: listen %s: %s port %s is already in use (another skein node?): %s", ErrPortInUse, s, network, port, portAdvice)
			}
			continue // not ours to judge (no such interface, ...): libp2p says
		}
		_ = closer.Close()
	}
	return nil
}

// ipPort returns the IP transport address at the start of m ("tcp" or
// "udp", "host:port") when its port is not 0.
func ipPort(m ma.Multiaddr) (network, hostport string, ok bool) {
	if len(m) < 2 {
		return "", "", false
	}
	switch m[0].Code() {
	case ma.P_IP4, ma.P_IP6:
	default:
		return "", "", false
	}
	switch m[1].Code() {
	case ma.P_TCP, ma.P_UDP:
	default:
		return "", "", false
	}
	a, err := manet.ToNetAddr(m[:2])
	if err != nil {
		return "", "", false
	}
	switch a := a.(type) {
	case *net.TCPAddr:
		return "tcp", a.String(), a.Port != 0
	case *net.UDPAddr:
		return "udp", a.String(), a.Port != 0
	}
	return "", "", false
}

// listenEach makes h listen on every address, one at a time, so that a
// failure is an error naming the address: libp2p's own listening at
// construction only logs (to its own logger) the addresses that failed
// when at least one succeeded, and a node lost its QUIC and WebSocket
// listeners without a warning.
func listenEach(h host.Host, addrs []string) error {
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("network.ipfs: listen %s: %w", s, err)
		}
		if err := h.Network().Listen(m); err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%w: listen %s: %v: %s", ErrPortInUse, s, err, portAdvice)
			}
			return fmt.Errorf("network.ipfs: listen %s: %w", s, err)
		}
	}
	return nil
}
