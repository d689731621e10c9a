package plugintest

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// UnixTransport is a reference sdk.Transport (and sdk.Plugin) over unix
// stream sockets, for tests across processes on one machine: an address is
// a socket path. Proto is its multiaddr protocol name (e.g. "x-test-unix");
// ID its plugin ID (default "transport.test-unix").
type UnixTransport struct {
	Proto string
	ID    string
}

var (
	_ sdk.Transport = UnixTransport{}
	_ sdk.Plugin    = UnixTransport{}
)

// Describe says it is a transport plugin.
func (u UnixTransport) Describe(context.Context) (sdk.Description, error) {
	id := u.ID
	if id == "" {
		id = "transport.test-unix"
	}
	return sdk.Description{ID: id, Kinds: []sdk.Kind{sdk.KindTransport}, Version: "1.0.0"}, nil
}

// Configure accepts any config and ignores it.
func (UnixTransport) Configure(context.Context, map[string]any) ([]sdk.Diagnostic, error) {
	return nil, nil
}

// Start does nothing.
func (UnixTransport) Start(context.Context) error { return nil }

// Stop does nothing (listeners are closed by their owners).
func (UnixTransport) Stop(context.Context) error { return nil }

// Protocol returns Proto.
func (u UnixTransport) Protocol() string { return u.Proto }

// Listen listens on the socket path addr.
func (UnixTransport) Listen(_ context.Context, addr string) (sdk.Listener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return nil, err
	}
	return &unixListener{ln: ln}, nil
}

// Dial connects to the socket path addr.
func (UnixTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", addr)
}

type unixListener struct {
	ln    *net.UnixListener
	close sync.Once
	err   error
}

func (l *unixListener) Accept(ctx context.Context) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { _ = l.ln.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := l.ln.AcceptUnix()
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return c, err
}

func (l *unixListener) Addr() string { return l.ln.Addr().String() }

// Close closes the listener; closing again returns the first result.
func (l *unixListener) Close() error {
	l.close.Do(func() { l.err = l.ln.Close() })
	return l.err
}

// SocketDir returns a private directory with a short path for unix
// sockets, removed at the end of the test: sun_path holds ~107 bytes, too
// few for t.TempDir under long test names.
func SocketDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "skt-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
