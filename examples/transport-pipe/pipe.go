package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// Pipe is a transport over unix stream sockets. An address is the path of
// a socket; Listen("") makes one in a fresh private directory.
type Pipe struct {
	mu  sync.Mutex
	dir string // config "dir": where Listen("") puts sockets ("" = temp dir)
}

var (
	_ sdk.Plugin    = (*Pipe)(nil)
	_ sdk.Transport = (*Pipe)(nil)
)

// New returns an unconfigured Pipe; it has no side effects.
func New() *Pipe { return &Pipe{} }

// Describe says what the plugin is.
func (p *Pipe) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		ID:      "transport.pipe",
		Kinds:   []sdk.Kind{sdk.KindTransport},
		Version: "0.1.0",
		ConfigSchema: []sdk.ConfigKey{{
			Key: "dir", Type: "string", Default: "",
			Description: "directory for sockets made by Listen(\"\"); empty means a private temporary directory",
		}},
	}, nil
}

// Configure validates and applies the config subtree.
func (p *Pipe) Configure(_ context.Context, cfg map[string]any) ([]sdk.Diagnostic, error) {
	var diags []sdk.Diagnostic
	dir := ""
	for k, v := range cfg {
		switch k {
		case "dir":
			s, ok := v.(string)
			if !ok {
				diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: k, Message: fmt.Sprintf("want a string, got %T", v)})
				continue
			}
			if s != "" && !filepath.IsAbs(s) {
				diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: k, Message: "want an absolute path"})
				continue
			}
			dir = s
		default:
			diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: k, Message: "unknown key"})
		}
	}
	if len(diags) == 0 {
		p.mu.Lock()
		p.dir = dir
		p.mu.Unlock()
	}
	return diags, nil
}

// Start logs that the plugin runs.
func (p *Pipe) Start(context.Context) error {
	slog.Info("pipe transport started")
	return nil
}

// Stop has nothing to release: listeners are closed by their owners.
func (p *Pipe) Stop(context.Context) error { return nil }

// Protocol is the multiaddr protocol name the transport registers.
func (p *Pipe) Protocol() string { return "x-unix-pipe" }

// Listen listens on the socket path addr, or on a fresh one if addr is "".
func (p *Pipe) Listen(ctx context.Context, addr string) (sdk.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	madeDir := ""
	if addr == "" {
		p.mu.Lock()
		base := p.dir
		p.mu.Unlock()
		dir, err := os.MkdirTemp(base, "pipe-")
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		madeDir = dir
		addr = filepath.Join(dir, "listen.sock")
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil && errors.Is(err, syscall.EADDRINUSE) && removeStaleSocket(addr) {
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	}
	if err != nil {
		if madeDir != "" {
			_ = os.RemoveAll(madeDir)
		}
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return &listener{ln: ln, addr: addr, dir: madeDir}, nil
}

// removeStaleSocket removes the socket file at path if nothing listens on
// it any more (left behind by a process that was killed, such as this
// plugin before a restart), and reports whether it did. Anything but a
// socket is left alone.
func removeStaleSocket(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return false // in use
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	return os.Remove(path) == nil
}

// Dial connects to the socket path addr.
func (p *Pipe) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return c, nil
}

type listener struct {
	ln   *net.UnixListener
	addr string
	dir  string
	once sync.Once
}

// Accept waits for a connection; a context that ends interrupts it.
func (l *listener) Accept(ctx context.Context) (net.Conn, error) {
	stop := make(chan struct{})
	fired := make(chan bool, 1)
	go func() {
		select {
		case <-ctx.Done():
			_ = l.ln.SetDeadline(time.Unix(1, 0)) // wakes AcceptUnix
			fired <- true
		case <-stop:
			fired <- false
		}
	}()
	c, err := l.ln.AcceptUnix()
	close(stop)
	if <-fired {
		// Clear the deadline so the next Accept is not interrupted too.
		_ = l.ln.SetDeadline(time.Time{})
		if err != nil {
			return nil, ctx.Err()
		}
	}
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return nil, net.ErrClosed
		}
		return nil, fmt.Errorf("accept: %w", err)
	}
	return c, nil
}

func (l *listener) Addr() string { return l.addr }

func (l *listener) Close() error {
	var err error
	l.once.Do(func() {
		err = l.ln.Close()
		if l.dir != "" {
			_ = os.RemoveAll(l.dir)
		}
	})
	return err
}
