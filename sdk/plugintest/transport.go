package plugintest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// TestTransport runs the transport conformance suite. open returns a
// started transport and an address to listen on ("" when the transport
// picks one); each subtest listens on it with Listen and dials the
// listener's Addr with Dial on the same transport, and closes its
// listener before it ends. open may return the same transport every time.
//
// What it requires beyond the sdk.Transport doc comments: bytes arrive
// intact and in order both ways, several connections are independent, a
// Close by one side ends the other side's reads with io.EOF after the data
// sent before it, Accept returns when its context ends or its listener is
// closed, and a read deadline in the past makes Read fail with a timeout.
func TestTransport(t *testing.T, open func(t testing.TB) (tr sdk.Transport, listenAddr string)) {
	t.Helper()
	for _, tc := range transportCases {
		t.Run(tc.name, func(t *testing.T) {
			tr, addr := open(t)
			tc.run(t, tr, addr)
		})
	}
}

type transportCase struct {
	name string
	run  func(t *testing.T, tr sdk.Transport, addr string)
}

// pair listens, dials and accepts one connection.
func pair(t *testing.T, tr sdk.Transport, addr string) (l sdk.Listener, dialed, accepted net.Conn) {
	t.Helper()
	ctx := testCtx(t)
	l, err := tr.Listen(ctx, addr)
	if err != nil {
		t.Fatalf("listen %q: %v", addr, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	type res struct {
		c   net.Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		c, err := l.Accept(ctx)
		acc <- res{c, err}
	}()
	dialed, err = tr.Dial(ctx, l.Addr())
	if err != nil {
		t.Fatalf("dial %q: %v", l.Addr(), err)
	}
	t.Cleanup(func() { _ = dialed.Close() })
	r := <-acc
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	t.Cleanup(func() { _ = r.c.Close() })
	return l, dialed, r.c
}

func writeAll(c net.Conn, b []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(b)
		done <- err
	}()
	return done
}

var transportCases = []transportCase{
	{"Protocol", func(t *testing.T, tr sdk.Transport, _ string) {
		if tr.Protocol() == "" {
			t.Fatal("Protocol() is empty")
		}
		if pt, ok := tr.(sdk.PacketTransport); ok {
			p := pt.PacketProfile()
			if p.MTU < 0 || p.Bandwidth < 0 || p.Latency < 0 {
				t.Fatalf("packet profile has negative figures: %+v", p)
			}
		}
	}},
	{"EchoBothWays", func(t *testing.T, tr sdk.Transport, addr string) {
		l, a, b := pair(t, tr, addr)
		if l.Addr() == "" {
			t.Fatal("listener Addr() is empty")
		}
		for _, c := range []net.Conn{a, b} {
			if c.LocalAddr() == nil || c.RemoteAddr() == nil {
				t.Fatal("connection without addresses")
			}
		}
		for i, dir := range [][2]net.Conn{{a, b}, {b, a}, {a, b}} {
			msg := fmt.Appendf(nil, "message %d", i)
			w := writeAll(dir[0], msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(dir[1], got); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
			if err := <-w; err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("read %q, want %q", got, msg)
			}
		}
	}},
	{"LargeTransferBothWays", func(t *testing.T, tr sdk.Transport, addr string) {
		_, a, b := pair(t, tr, addr)
		const size = 4 << 20
		ab, ba := patterned(size, 1), patterned(size, 2)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		send := func(c net.Conn, data []byte) {
			defer wg.Done()
			if _, err := c.Write(data); err != nil {
				errs <- fmt.Errorf("write: %w", err)
			}
		}
		recv := func(c net.Conn, want []byte) {
			defer wg.Done()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- fmt.Errorf("read: %w", err)
				return
			}
			if !bytes.Equal(got, want) {
				errs <- errors.New("received bytes differ from those sent")
			}
		}
		wg.Add(4)
		go send(a, ab)
		go send(b, ba)
		go recv(b, ab)
		go recv(a, ba)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}},
	{"CloseGivesEOFAfterData", func(t *testing.T, tr sdk.Transport, addr string) {
		_, a, b := pair(t, tr, addr)
		msg := patterned(100<<10, 3)
		w := writeAll(a, msg)
		got := make(chan []byte, 1)
		rerr := make(chan error, 1)
		go func() {
			all, err := io.ReadAll(b)
			got <- all
			rerr <- err
		}()
		if err := <-w; err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		all := <-got
		if err := <-rerr; err != nil {
			t.Fatalf("read to EOF: %v (after %d bytes)", err, len(all))
		}
		if !bytes.Equal(all, msg) {
			t.Fatalf("read %d bytes before EOF, want the %d sent", len(all), len(msg))
		}
	}},
	{"ManyConnections", func(t *testing.T, tr sdk.Transport, addr string) {
		ctx := testCtx(t)
		l, err := tr.Listen(ctx, addr)
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		const n = 8
		errs := make(chan error, 2*n)
		go func() { // echo server
			for range n {
				c, err := l.Accept(ctx)
				if err != nil {
					errs <- fmt.Errorf("accept: %w", err)
					return
				}
				go func() {
					defer c.Close()
					buf := make([]byte, 64)
					k, err := io.ReadFull(c, buf[:8])
					if err != nil {
						errs <- fmt.Errorf("server read: %w", err)
						return
					}
					_, _ = c.Write(buf[:k])
				}()
			}
		}()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := tr.Dial(ctx, l.Addr())
				if err != nil {
					errs <- fmt.Errorf("dial %d: %w", i, err)
					return
				}
				defer c.Close()
				// A failing server must fail the test, not hang it.
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				msg := fmt.Appendf(nil, "conn-%03d", i)
				if _, err := c.Write(msg); err != nil {
					errs <- fmt.Errorf("write %d: %w", i, err)
					return
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil {
					errs <- fmt.Errorf("read %d: %w", i, err)
					return
				}
				if !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("conn %d echoed %q, want %q", i, got, msg)
				}
			}()
		}
		wg.Wait()
		// Not closed: the echo server may still report (its Accept
		// fails once the deferred Close runs).
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	}},
	{"AcceptHonoursContext", func(t *testing.T, tr sdk.Transport, addr string) {
		l, err := tr.Listen(testCtx(t), addr)
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer l.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := l.Accept(ctx)
			done <- err
		}()
		cancel()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("accept returned a connection after its context ended")
			}
		case <-testCtx(t).Done():
			t.Fatal("accept did not return after its context ended")
		}
	}},
	{"CloseUnblocksAccept", func(t *testing.T, tr sdk.Transport, addr string) {
		l, err := tr.Listen(testCtx(t), addr)
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		started := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			close(started)
			_, err := l.Accept(testCtx(t))
			done <- err
		}()
		<-started
		if err := l.Close(); err != nil {
			t.Fatalf("close listener: %v", err)
		}
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("accept returned a connection after Close")
			}
		case <-testCtx(t).Done():
			t.Fatal("accept did not return after the listener closed")
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	}},
	{"DialClosedListenerFails", func(t *testing.T, tr sdk.Transport, addr string) {
		l, err := tr.Listen(testCtx(t), addr)
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		where := l.Addr()
		_ = l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := tr.Dial(ctx, where)
		if err == nil {
			_ = c.Close()
			t.Fatalf("dial %q after its listener closed succeeded", where)
		}
	}},
	{"ReadDeadline", func(t *testing.T, tr sdk.Transport, addr string) {
		_, a, b := pair(t, tr, addr)
		if err := b.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
			t.Fatalf("set read deadline: %v", err)
		}
		_, err := b.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read past deadline: err = %v, want a timeout net.Error", err)
		}
		// Clearing the deadline makes the connection usable again.
		if err := b.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		w := writeAll(a, []byte("x"))
		got := make([]byte, 1)
		if _, err := io.ReadFull(b, got); err != nil || got[0] != 'x' {
			t.Fatalf("read after clearing deadline = %q, %v", got, err)
		}
		if err := <-w; err != nil {
			t.Fatal(err)
		}
	}},
}
