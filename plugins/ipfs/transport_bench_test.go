package ipfs

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// BenchmarkAttachedTransportStream measures one libp2p stream (Noise +
// yamux) between two hosts connected only through an attached transport,
// against the same over loopback TCP.
func BenchmarkAttachedTransportStream(b *testing.B) {
	const chunk = 1 << 20
	cases := []struct {
		name string
		pair func(b *testing.B) (a, c *Network)
	}{
		{"tcp loopback (baseline)", func(b *testing.B) (*Network, *Network) {
			return startNetwork(b, map[string]any{"pubsub_validation": PubsubValidationNone}),
				startNetwork(b, map[string]any{"pubsub_validation": PubsubValidationNone})
		}},
		{"linked unix transport", func(b *testing.B) (*Network, *Network) {
			dir := plugintest.SocketDir(b)
			tr := unixTransport("x-test-unix")
			return startAttached(b, tr, filepath.Join(dir, "a.sock")), startAttached(b, tr, filepath.Join(dir, "b.sock"))
		}},
		{"transport-pipe process socket plane", func(b *testing.B) (*Network, *Network) {
			dir := plugintest.SocketDir(b)
			open := func() sdk.Transport {
				rp := plugintest.StartBinary(b, transportPipeBinary(b), plugintest.WithDataPlane(sdk.DataPlaneSocket))
				tr, _ := rp.Transport()
				return tr
			}
			return startAttached(b, open(), filepath.Join(dir, "a.sock")), startAttached(b, open(), filepath.Join(dir, "b.sock"))
		}},
		{"transport-pipe process stream plane", func(b *testing.B) (*Network, *Network) {
			dir := plugintest.SocketDir(b)
			open := func() sdk.Transport {
				rp := plugintest.StartBinary(b, transportPipeBinary(b), plugintest.WithDataPlane(sdk.DataPlaneStream))
				tr, _ := rp.Transport()
				return tr
			}
			return startAttached(b, open(), filepath.Join(dir, "a.sock")), startAttached(b, open(), filepath.Join(dir, "b.sock"))
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			a, c := tc.pair(b)
			connect(b, a, c)
			const proto = "/skein/bench/sink/1"
			c.Host().SetStreamHandler(proto, func(s network.Stream) {
				_, _ = io.Copy(io.Discard, s)
				_, _ = s.Write([]byte{1})
				_ = s.Close()
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			pid, err := peer.Decode(c.PeerID())
			if err != nil {
				b.Fatal(err)
			}
			s, err := a.Host().NewStream(ctx, pid, proto)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ResetTimer()
			for range b.N {
				if _, err := s.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.CloseWrite(); err != nil {
				b.Fatal(err)
			}
			var ack [1]byte
			if _, err := io.ReadFull(s, ack[:]); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = s.Close()
		})
	}
}
