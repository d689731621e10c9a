package main

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// BenchmarkThroughput moves bytes one way over a connection of the pipe
// transport: linked in (a raw unix socket), and out of process through the
// socket and the stream data planes (host -> plugin -> unix socket ->
// plugin -> host).
func BenchmarkThroughput(b *testing.B) {
	bin := buildPlugin(b)
	cases := []struct {
		name string
		open func(b *testing.B) sdk.Transport
	}{
		{"linked", func(b *testing.B) sdk.Transport { return New() }},
		{"socket", func(b *testing.B) sdk.Transport {
			tr, _ := plugintest.StartBinary(b, bin, plugintest.WithDataPlane(sdk.DataPlaneSocket)).Transport()
			return tr
		}},
		{"stream", func(b *testing.B) sdk.Transport {
			tr, _ := plugintest.StartBinary(b, bin, plugintest.WithDataPlane(sdk.DataPlaneStream)).Transport()
			return tr
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			tr := tc.open(b)
			if tr == nil {
				b.Fatal("no transport")
			}
			ctx := context.Background()
			l, err := tr.Listen(ctx, "")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			acc := make(chan net.Conn, 1)
			go func() {
				c, err := l.Accept(ctx)
				if err != nil {
					close(acc)
					return
				}
				acc <- c
			}()
			w, err := tr.Dial(ctx, l.Addr())
			if err != nil {
				b.Fatal(err)
			}
			r, ok := <-acc
			if !ok {
				b.Fatal("accept failed")
			}
			drained := make(chan int64, 1)
			go func() {
				n, _ := io.Copy(io.Discard, r)
				drained <- n
			}()
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			_ = w.Close()
			<-drained
			_ = r.Close()
		})
	}
}
