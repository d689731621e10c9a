package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

const pipeID = "test.pipe"

// pipeTransport is a test transport plugin: connections are net.Pipe pairs
// between a Dial and a Listen on the same address inside the plugin.
type pipeTransport struct {
	mu        sync.Mutex
	listeners map[string]*pipeListener
}

var (
	_ sdk.Plugin          = (*pipeTransport)(nil)
	_ sdk.Transport       = (*pipeTransport)(nil)
	_ sdk.PacketTransport = (*pipeTransport)(nil)
)

func newPipeTransport() *pipeTransport {
	return &pipeTransport{listeners: map[string]*pipeListener{}}
}

func (p *pipeTransport) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: pipeID, Kinds: []sdk.Kind{sdk.KindTransport}, Version: "0.0.1"}, nil
}
func (p *pipeTransport) Configure(context.Context, map[string]any) ([]sdk.Diagnostic, error) {
	return nil, nil
}
func (p *pipeTransport) Start(context.Context) error { return nil }
func (p *pipeTransport) Stop(context.Context) error  { return nil }
func (p *pipeTransport) Protocol() string            { return "x-pipe" }
func (p *pipeTransport) PacketProfile() sdk.PacketProfile {
	return sdk.PacketProfile{MTU: 512, Latency: time.Millisecond}
}

func (p *pipeTransport) Listen(_ context.Context, addr string) (sdk.Listener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.listeners[addr]; ok {
		return nil, fmt.Errorf("listen %s: %w: in use", addr, sdk.ErrInvalidArgument)
	}
	l := &pipeListener{addr: addr, conns: make(chan net.Conn, 4), closed: make(chan struct{}), owner: p}
	p.listeners[addr] = l
	return l, nil
}

func (p *pipeTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	p.mu.Lock()
	l, ok := p.listeners[addr]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("dial %s: %w: nobody listens", addr, sdk.ErrInvalidArgument)
	}
	a, b := net.Pipe()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.closed:
		return nil, fmt.Errorf("dial %s: listener closed", addr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeListener struct {
	addr   string
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	owner  *pipeTransport
}

func (l *pipeListener) Accept(ctx context.Context) (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *pipeListener) Addr() string { return l.addr }

func (l *pipeListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.owner.mu.Lock()
		delete(l.owner.listeners, l.addr)
		l.owner.mu.Unlock()
	})
	return nil
}

func TestTransportThroughHost(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec func(t *testing.T) Spec
	}{
		{"linked", func(t *testing.T) Spec { return Spec{Name: "pipe", ID: pipeID, Mode: ModeLinked} }},
		{"process", func(t *testing.T) Spec { return processSpec(t, "pipe", "pipe") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newTestHost(t)
			p := launch(t, h, tc.spec(t))
			if _, err := p.Store(); !errors.Is(err, ErrKindNotServed) {
				t.Fatalf("Store() err = %v, want ErrKindNotServed", err)
			}
			tr, err := p.Transport()
			if err != nil {
				t.Fatal(err)
			}
			if tr.Protocol() != "x-pipe" {
				t.Fatalf("Protocol() = %q", tr.Protocol())
			}
			pt, ok := tr.(sdk.PacketTransport)
			if !ok || pt.PacketProfile().MTU != 512 {
				t.Fatalf("transport proxy is PacketTransport %v (profile %+v), want MTU 512", ok, pt)
			}
			ctx := ctxTimeout(t, 20*time.Second)
			l, err := tr.Listen(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if _, err := tr.Dial(ctx, "nowhere"); !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Fatalf("Dial nowhere err = %v, want sdk.ErrInvalidArgument", err)
			}
			accepted := make(chan error, 1)
			go func() {
				c, err := l.Accept(ctx)
				if err != nil {
					accepted <- err
					return
				}
				defer c.Close()
				buf := make([]byte, 4)
				if _, err := io.ReadFull(c, buf); err != nil {
					accepted <- err
					return
				}
				_, err = c.Write(append([]byte("re:"), buf...))
				accepted <- err
			}()
			c, err := tr.Dial(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 7)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "re:ping" {
				t.Fatalf("read %q, %v; want re:ping", got, err)
			}
			if err := <-accepted; err != nil {
				t.Fatalf("accept side: %v", err)
			}
		})
	}
}

// TestCrashLeavesNoSockets: the sockets of a transport plugin that was
// SIGKILLed (its gRPC socket, its data-plane directory skein-tp-*) are
// removed by the host, as are those of a plugin stopped cleanly: nothing
// is left in the temp directory.
func TestCrashLeavesNoSockets(t *testing.T) {
	tmp, err := os.MkdirTemp("", "skein-pt-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	t.Setenv("TMPDIR", tmp) // the host's and, through the allow-list, the plugin's
	h, _ := newTestHost(t)
	spec := processSpec(t, "pipe", "pipe")
	spec.DataPlane = sdk.DataPlaneSocket
	p := launch(t, h, spec)
	ctx := ctxTimeout(t, 30*time.Second)
	connect := func() {
		t.Helper()
		tr, err := p.Transport()
		if err != nil {
			t.Fatal(err)
		}
		l, err := tr.Listen(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			if c, err := l.Accept(ctx); err == nil {
				c.Close()
			}
		}()
		c, err := tr.Dial(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	connect()
	if found := socketDirs(t, tmp); len(found) == 0 {
		t.Fatalf("no skein-tp-* directory under %s after a socket-plane connection: the test sees nothing", tmp)
	}
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, 20*time.Second, "restart", func() bool { return p.restarts == 1 && p.cur != nil })
	connect()
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if len(left) > 0 {
		t.Errorf("left in the temp directory after a crash and a stop: %v", left)
	}
}

// socketDirs lists the skein-tp-* directories anywhere under dir.
func socketDirs(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "skein-tp-") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
