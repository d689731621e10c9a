package ipfs

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	skeinmetrics "github.com/skein-p2p/skein/core/metrics"
)

// transportStats counts the stream bytes exchanged with peers by the
// transport of the peer's connection (libp2p reports stream bytes per
// peer, above Noise and yamux). It is the host's bandwidth reporter
// (libp2p.BandwidthReporter) and a notifiee that keeps each peer's
// transport.
type transportStats struct {
	*metrics.BandwidthCounter

	// peers maps a connected peer.ID to the transport name of its newest
	// connection.
	peers sync.Map
	mu    sync.Mutex
	bytes map[string]*transportBytes
}

type transportBytes struct{ in, out atomic.Uint64 }

var _ metrics.Reporter = (*transportStats)(nil)

func newTransportStats() *transportStats {
	return &transportStats{BandwidthCounter: metrics.NewBandwidthCounter(), bytes: map[string]*transportBytes{}}
}

func (s *transportStats) counter(p peer.ID) *transportBytes {
	name := "unknown"
	if v, ok := s.peers.Load(p); ok {
		name = v.(string)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bytes[name]
	if b == nil {
		b = &transportBytes{}
		s.bytes[name] = b
	}
	return b
}

// LogSentMessageStream implements metrics.Reporter.
func (s *transportStats) LogSentMessageStream(n int64, _ protocol.ID, p peer.ID) {
	s.counter(p).out.Add(uint64(n))
}

// LogRecvMessageStream implements metrics.Reporter.
func (s *transportStats) LogRecvMessageStream(n int64, _ protocol.ID, p peer.ID) {
	s.counter(p).in.Add(uint64(n))
}

// notifiee keeps the transport of every connected peer.
func (s *transportStats) notifiee() network.Notifiee {
	return &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			s.peers.Store(c.RemotePeer(), transportName(c.RemoteMultiaddr()))
		},
		DisconnectedF: func(n network.Network, c network.Conn) {
			if conns := n.ConnsToPeer(c.RemotePeer()); len(conns) > 0 {
				s.peers.Store(c.RemotePeer(), transportName(conns[len(conns)-1].RemoteMultiaddr()))
				return
			}
			s.peers.Delete(c.RemotePeer())
		},
	}
}

// details adds the status details core/metrics reads
// (transport.<name>.peers, .bytes_in, .bytes_out) for the connections of n.
func (s *transportStats) details(n network.Network, into map[string]string) {
	peers := map[string]map[peer.ID]bool{}
	for _, c := range n.Conns() {
		name := transportName(c.RemoteMultiaddr())
		if peers[name] == nil {
			peers[name] = map[peer.ID]bool{}
		}
		peers[name][c.RemotePeer()] = true
	}
	s.mu.Lock()
	for name := range s.bytes {
		if peers[name] == nil {
			peers[name] = nil
		}
	}
	for name, ps := range peers {
		prefix := skeinmetrics.DetailTransportPrefix + name
		into[prefix+skeinmetrics.DetailPeers] = fmt.Sprint(len(ps))
		var in, out uint64
		if b := s.bytes[name]; b != nil {
			in, out = b.in.Load(), b.out.Load()
		}
		into[prefix+skeinmetrics.DetailBytesIn] = fmt.Sprint(in)
		into[prefix+skeinmetrics.DetailBytesOut] = fmt.Sprint(out)
	}
	s.mu.Unlock()
}

// transportName names the transport of a connection's address: tcp, ws,
// wss, quic-v1, webtransport, p2p-circuit, or a plugin transport's
// protocol name: the last protocol of the address that is not an address,
// a port carrier or a peer ID.
func transportName(a ma.Multiaddr) string {
	name := "unknown"
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_IP4, ma.P_IP6, ma.P_IP6ZONE, ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR,
			ma.P_UDP, ma.P_P2P, ma.P_CERTHASH, ma.P_SNI, ma.P_TLS, ma.P_NOISE:
			continue
		}
		name = c.Protocol().Name
	}
	return name
}
