package ipfs

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func TestTransportName(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"/ip4/127.0.0.1/tcp/4001", "tcp"},
		{"/ip4/127.0.0.1/udp/4001/quic-v1", "quic-v1"},
		{"/ip6/::1/tcp/4002/ws", "ws"},
		{"/dns4/example.com/tcp/443/tls/sni/example.com/ws", "ws"},
		{"/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWGzBx9yYv6T7hzgHo3G9pQ3nQw6ZgvtxsYvV6NQUkUeQK/p2p-circuit", "p2p-circuit"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := transportName(ma.StringCast(tt.addr)); got != tt.want {
				t.Errorf("transportName(%s) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}
